# AMT ViT-B/16 pre-training on ImageNet-1k as the release's mae-AMT: MAE's recipe (400 epochs, 40
# warm-up, effective batch 4096 = 8 processes × 64 × accumulate 8, blr 1.5e-4, AdamW betas 0.9/0.95,
# weight decay 0.05), mask 0.45 and throw 0.40 (the paper's; the release's command-line defaults
# 0.75 / 0 turn throwing off), random masking at 0.75 for the first 40 epochs, the attention maps
# recomputed after epoch 40 and every 40 epochs after, raw-pixel loss.
# Point data.dataset.root at an ImageFolder tree (train/<class>/*.JPEG).
model = dict(type="amt", size="base", img_size=224, mask_ratio=0.45, throw_ratio=0.40, warmup_mask_ratio=0.75,
             norm_pix_loss=False)
data = dict(
    dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0), track_geometry=True),
    batch_size=64,
    num_workers=10,
)
_processes = 8
_iters_per_epoch = 1281167 // (64 * _processes)
schedule = dict(max_iters=400 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, accumulate=8, blr=1.5e-4,
                weight_decay=0.05, betas=(0.9, 0.95), clip_grad=None, nonfinite="stop", min_lr=0.0)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
custom_hooks = [dict(type="AMTAttentionHook", random_epochs=40, refresh_epochs=40, batch_size=256)]
