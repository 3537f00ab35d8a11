# SupMAE on scikit-learn's labelled digits at exactly the budget of core's mae_demo_digits (same
# encoder, decoder, data, schedule), so `maekit demo supmae` compares it with plain MAE fairly.
# The head is the reference's (mean-pooled, MLP with BatchNorm) at a demo width.
model = dict(type="supmae", num_classes=10, cls_hidden=256, global_pool=True, cls_loss_ratio=0.01, temperature=10.0,
             size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, norm_pix_loss=True)
data = dict(
    dataset=dict(type="digits", split="train", size=32, channels=1),
    transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
    batch_size=64,
    num_workers=0,
)
schedule = dict(max_iters=1000, warmup_iters=50, blr=5e-3, weight_decay=0.05, betas=(0.9, 0.95), accumulate=1,
                clip_grad=None, nonfinite="stop", min_lr=0.0)
checkpoint_interval = 500
log_interval = 50
seed = 0
probe = dict(train=dict(type="digits", split="train", size=32, channels=1),
             test=dict(type="digits", split="test", size=32, channels=1))
