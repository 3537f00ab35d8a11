# MaskFeat on Kinetics-400 with a ViT-B over 2x16x16 cubes (the paper's video models are MViTv2, which
# maekit does not ship: deliberate difference), 16 frames at stride 4, cuboid masks at 40 % of an 8x7x7
# window, HOG targets (9 bins, 8-pixel cells, 108 per cube from its first frame); SlowFast's K400
# recipe: 300 epochs, 10 warm-up, AdamW (0.9, 0.999) wd 0.05, lr 1e-4 per machine of 8 GPUs x 4 clips (here blr
# scaled to batch 256), cosine to 1e-6, gradient clipping 0.02.
_base_ = ["./videomae_vit_base_k400.py"]
model = dict(_delete_=True, type="maskfeat", size="base", video=True, num_frames=16, img_size=224, mask_ratio=0.4)
data = dict(transform=dict(_delete_=True, type="video_resized_crop", size=224, scale=(0.5, 1.0), short_side=256))
_batch = 512
_iters_per_epoch = 240436 // _batch
schedule = dict(max_iters=300 * _iters_per_epoch, warmup_iters=10 * _iters_per_epoch, blr=1e-4 * 256 / 32,
                betas=(0.9, 0.999), min_lr=1e-6, clip_grad=0.02, iters_per_epoch=_iters_per_epoch)
