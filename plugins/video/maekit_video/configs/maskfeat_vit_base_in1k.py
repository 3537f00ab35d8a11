# MaskFeat ViT-B/16 on ImageNet-1k images (SlowFast's in1k_VIT_B_MaskFeat_PT): blockwise masks at 40 %
# of the 14x14 patches (78 by BEiT's rectangle rule, count may fall short), HOG targets (108 per patch),
# mask tokens inside the encoder, LayerNorm + Linear head; 1600 epochs (the config says 300), 30
# warm-up, AdamW (0.9, 0.999) wd 0.05, lr 2e-4 per 256, cosine, gradient clipping 0.02 (CLIP_GRAD_L2NORM).
model = dict(type="maskfeat", size="base", video=False, img_size=224, mask_ratio=0.4)
data = dict(dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
            transform=dict(type="mae_augment", size=224, scale=(0.5, 1.0)), batch_size=64, num_workers=10)
_iters_per_epoch = 1281167 // 2048
schedule = dict(max_iters=1600 * _iters_per_epoch, warmup_iters=30 * _iters_per_epoch, blr=2e-4, weight_decay=0.05,
                betas=(0.9, 0.999), min_lr=1e-6, clip_grad=0.02, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
