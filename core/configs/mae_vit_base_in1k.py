# MAE ViT-B/16 pre-training on ImageNet-1k as in the paper: 800 epochs, 40 warm-up, effective batch
# 4096 (e.g. 8 GPUs × 64 × accumulate 8), blr 1.5e-4, mask 0.75, norm-pix loss.
# Point data.dataset.root at an ImageFolder tree (train/<class>/*.JPEG).
_base_ = ["./_mae_schedule.py"]

model = dict(type="mae", size="base", img_size=224, mask_ratio=0.75, norm_pix_loss=True)
data = dict(
    dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0)),
    batch_size=64,
    num_workers=10,
)
# An iteration is one data-loader batch per process (the optimiser steps every `accumulate` of
# them): 8 processes (torchrun --nproc_per_node 8) × 64 images per iteration, × accumulate 8 = 4096.
_processes = 8
_iters_per_epoch = 1281167 // (64 * _processes)
schedule = dict(max_iters=800 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, accumulate=8)
checkpoint_interval = 20 * _iters_per_epoch
