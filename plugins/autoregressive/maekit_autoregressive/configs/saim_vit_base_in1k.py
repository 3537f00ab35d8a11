# SAIM ViT-B/16 on ImageNet-1k (data.dataset.root: an ImageFolder tree), the reference's recipe:
# 800 epochs, effective batch 2048 (8 GPUs × 64 × accumulate 4), AdamW (0.9, 0.95), blr 2e-4, 30
# warm-up epochs, weight decay 0.05 (the argparse default; the README's command line says 0.5), a
# 12-block query stream, MLP head, the 9×9 σ 1 blurred norm-pix target over every patch.
model = dict(type="saim", size="base", img_size=224, patch_size=16, in_chans=3, query_depth=12)
data = dict(
    dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0)),
    batch_size=64,
    num_workers=10,
)
# an iteration is one batch per process (torchrun --nproc_per_node 8); the optimiser steps every 4
_processes = 8
_iters_per_epoch = 1281167 // (64 * _processes)
schedule = dict(max_iters=800 * _iters_per_epoch, warmup_iters=30 * _iters_per_epoch, blr=2e-4, weight_decay=0.05,
                betas=(0.9, 0.95), accumulate=4, min_lr=0.0)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
