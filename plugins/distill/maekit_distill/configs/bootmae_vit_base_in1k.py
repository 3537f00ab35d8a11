# BootMAE ViT-B/16 on ImageNet-1k as the reference's scripts/pretrain/bash_pre_BootMAE_Base_800.sh:
# 800 epochs (the script says 801) with 40 warm-up, batch 256 per GPU, lr 1.5e-4 × batch / 256 with
# min_lr 1e-4, AdamW (0.9, 0.999), weight decay 0.05, 147 of 196 tokens removed (BEiT blocks of 120
# target, 16–60 per block, + random), feature weight 1 ramped to full by epoch 200, EMA momentum
# 0.999 → 0.9999 → 0.99999 (epochs 0 / 100 / 400). The script's GPU count is whatever the machine
# has; 8 processes here. An iteration is one batch per process.
_processes = 8
_iters_per_epoch = 1281167 // (256 * _processes)  # drop_last, as the reference's loader
model = dict(type="bootmae", size="base", img_size=224, mask_ratio=0.75, epochs=800, feature_weight=1.0,
             decoder_dim=512, decoder_depth=2)
data = dict(
    dataset=dict(type="image_folder", root="/data/imagenet/train"),
    # the script passes no --imagenet_default_mean_and_std: datasets.py normalises with (0.5, 0.5, 0.5)
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0), flip=True, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    batch_size=256,
    num_workers=10,
)
schedule = dict(max_iters=800 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1.5e-4, weight_decay=0.05,
                betas=(0.9, 0.999), accumulate=1, clip_grad=None, nonfinite="stop", min_lr=1e-4,
                iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
