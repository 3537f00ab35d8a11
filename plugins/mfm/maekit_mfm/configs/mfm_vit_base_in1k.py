# MFM ViT-B/16 pre-training on ImageNet-1k as in the paper: 300 epochs, 20 warm-up, total batch
# 2048 (the reference: 16 GPUs × 128), frequency mask r1 16, low-pass probability 0.5, learned
# absolute positions, no transformer decoder, loss over the removed frequencies. As shipped: one
# process × 128 images per iteration × accumulate 16. An iteration is one data-loader batch per
# process, so with N processes (torchrun) set _processes = N and accumulate = 16 / N.
# Point data.dataset.root at an ImageFolder tree (train/<class>/*.JPEG).
_base_ = ["./_mfm_schedule.py"]

model = dict(type="mfm", encoder_name="vit_base_patch16_224", img_size=224, corruption="frequency",
             radius_inner=16, radius_outer=999, sample_ratio=0.5, decoder_depth=0)
data = dict(
    dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0)),
    batch_size=128,
    num_workers=10,
)
_processes = 1
_iters_per_epoch = 1281167 // (128 * _processes)
schedule = dict(max_iters=300 * _iters_per_epoch, warmup_iters=20 * _iters_per_epoch, accumulate=16 // _processes)
checkpoint_interval = 10 * _iters_per_epoch
# Fine-tuning as the reference (ViT-B: 100 epochs, 5 warm-up, lr 2e-3 × 2048 / 512, min lr
# 2.5e-7 × 2048 / 512, layer decay 0.8, drop path 0.1, mean pooling), same batch layout:
# `maekit finetune mfm_vit_base_in1k --checkpoint ...`.
finetune = dict(
    num_classes=1000,
    drop_path_rate=0.1,
    data=dict(dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
              transform=dict(type="mae_augment", size=224, scale=(0.08, 1.0)), batch_size=128, num_workers=10),
    test=dict(type="image_folder", root="data/imagenet/val", channels=3),
    schedule=dict(max_iters=100 * _iters_per_epoch, warmup_iters=5 * _iters_per_epoch, blr=1e-3, accumulate=16 // _processes,
                  weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.8, min_lr=1e-6),
)
