# Tiny MFM with a CNN (timm resnet18, stride 32) on scikit-learn's digits (32×32, one channel):
# minutes on 2 CPU cores; low-pass probability 0.3 as the paper's ResNet-50 config.
_base_ = ["./_mfm_schedule.py"]

model = dict(type="mfm", encoder_name="resnet18", img_size=32, in_chans=1, corruption="frequency",
             radius_inner=3, radius_outer=999, sample_ratio=0.3)
data = dict(
    dataset=dict(type="digits", split="train", size=32, channels=1),
    transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
    batch_size=64,
    num_workers=0,
)
schedule = dict(max_iters=400, warmup_iters=20, blr=2e-3, min_lr=0.0)
checkpoint_interval = 400
log_interval = 50
# a CNN has no class token: the probe reads the global average pool
probe = dict(train=dict(type="digits", split="train", size=32, channels=1),
             test=dict(type="digits", split="test", size=32, channels=1), pools=("mean",))
