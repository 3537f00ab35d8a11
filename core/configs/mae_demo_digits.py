# Tiny MAE on scikit-learn's digits (32×32, one channel, patch 4 → 64 tokens): minutes on 2 CPU cores.
_base_ = ["./_mae_schedule.py"]

model = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, norm_pix_loss=True)
data = dict(
    dataset=dict(type="digits", split="train", size=32, channels=1),
    transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
    batch_size=64,
    num_workers=0,
)
schedule = dict(max_iters=1000, warmup_iters=50, blr=5e-3)
checkpoint_interval = 500
log_interval = 50
probe = dict(train=dict(type="digits", split="train", size=32, channels=1),
             test=dict(type="digits", split="test", size=32, channels=1))
finetune = dict(
    num_classes=10,
    drop_path_rate=0.1,
    data=dict(dataset=dict(type="digits", split="train", size=32, channels=1),
              transform=dict(type="mae_augment", size=32, scale=(0.6, 1.0), flip=False), batch_size=64),
    test=dict(type="digits", split="test", size=32, channels=1),
    schedule=dict(max_iters=300, warmup_iters=30, blr=2e-3, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.75),
)
