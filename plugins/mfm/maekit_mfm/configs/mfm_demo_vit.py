# Tiny MFM with a ViT on scikit-learn's digits (32×32, one channel, patch 4): minutes on 2 CPU
# cores. The frequency radius scales with the image: the paper's 16 at 224 is 2.3 at 32; 2 here.
_base_ = ["./_mfm_schedule.py"]

model = dict(type="mfm", encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), corruption="frequency",
             radius_inner=2, radius_outer=999, sample_ratio=0.5)
data = dict(
    dataset=dict(type="digits", split="train", size=32, channels=1),
    transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
    batch_size=64,
    num_workers=0,
)
schedule = dict(max_iters=600, warmup_iters=30, blr=5e-3, min_lr=0.0)
checkpoint_interval = 600
log_interval = 50
# MFM fine-tunes with mean pooling; the probe reads mean-pooled tokens too.
probe = dict(train=dict(type="digits", split="train", size=32, channels=1),
             test=dict(type="digits", split="test", size=32, channels=1), pools=("mean", "cls"))
finetune = dict(
    num_classes=10,
    drop_path_rate=0.1,
    data=dict(dataset=dict(type="digits", split="train", size=32, channels=1),
              transform=dict(type="mae_augment", size=32, scale=(0.6, 1.0), flip=False), batch_size=64),
    test=dict(type="digits", split="test", size=32, channels=1),
    schedule=dict(max_iters=300, warmup_iters=30, blr=2e-3, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.8),
)
