# What the attnmask demos share with core's mae_demo_digits: its data (scikit-learn's digits at 32×32,
# one channel), augmentation, schedule (1000 iterations of batch 64, blr 5e-3) and probe, so every
# demo compares with plain MAE at the same budget. Its encoder (128 wide, 4 blocks, patch 4 → 64
# patches) is repeated in each method's model.
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
