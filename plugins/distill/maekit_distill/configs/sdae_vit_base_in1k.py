# SdAE ViT-B/16 on ImageNet-1k as the reference's README command: 300 epochs with 60 warm-up,
# batch 96 per GPU × 8 = 768, blr 2.666e-4 (lr 8e-4 at 768), AdamW (0.9, 0.95), weight decay 0.04
# (main_pretrain.py's default; its weight_decay_end is never used), mask 0.75, drop-path 0.25,
# 147 removed tokens in 3 folds of 49, teacher momentum cosine 0.96 → 0.99 once per epoch.
_processes = 8
_iters_per_epoch = 1281167 // (96 * _processes)  # drop_last, as the reference's loader
model = dict(type="sdae", size="base", img_size=224, mask_ratio=0.75, num_folds=3, fold_size=49, cos_dim="tokens",
             decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, epochs=300, drop_path_rate=0.25)
data = dict(
    dataset=dict(type="image_folder", root="/data/imagenet/train"),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0), flip=True),
    batch_size=96,
    num_workers=10,
)
schedule = dict(max_iters=300 * _iters_per_epoch, warmup_iters=60 * _iters_per_epoch, blr=2.666e-4, weight_decay=0.04,
                betas=(0.9, 0.95), accumulate=1, clip_grad=None, nonfinite="stop", min_lr=0.0,
                iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
