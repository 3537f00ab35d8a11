# SAIM on scikit-learn's digits at the budget of core's mae_demo_digits (same 128-wide 4-block ViT,
# patch 4 on 32×32: 64 tokens, 1000 iterations of batch 64): a random order per image, a 4-block
# query stream, the 9×9 σ 1 blurred per-patch-normalised target over every patch.
model = dict(type="saim", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4))
data = dict(
    dataset=dict(type="digits", split="train", size=32, channels=1),
    transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
    batch_size=64,
    num_workers=0,
)
schedule = dict(max_iters=1000, warmup_iters=50, blr=5e-3, weight_decay=0.05, betas=(0.9, 0.95), min_lr=0.0)
checkpoint_interval = 500
log_interval = 50
probe = dict(train=dict(type="digits", split="train", size=32, channels=1),
             test=dict(type="digits", split="test", size=32, channels=1))
