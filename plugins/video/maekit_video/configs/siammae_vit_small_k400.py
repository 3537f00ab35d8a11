# SiamMAE ViT-S/16 pre-training on Kinetics-400 (Gupta et al. 2023; no official code: the paper's
# recipe, CropMAE's re-implementation where the paper is silent): frame pairs 4-48 frames apart, one
# random resized crop (scale 0.5-1) and flip for both, future frame masked at 0.95, cross-self
# decoder 256 wide x 4 (CropMAE's), norm-pix target; 400 epochs (the ablations'), 40 warm-up, batch
# 2048, AdamW (0.9, 0.95), wd 0.05, blr 1.5e-4 (lr = blr x batch / 256), cosine to 0.
# Point the list at VideoMAE's train.csv ("path label", one space, no header; labels unused).
_train_list = "data/k400/train.csv"
# table_scale_offset: at 480 x 880 the position table is resampled as CropMAE's evaluation (DINO's) does.
model = dict(type="siammae", size="small", img_size=224, patch_size=16, mask_ratio=0.95, architecture="cross_self",
             encoder=dict(table_scale_offset=0.1))
data = dict(dataset=dict(type="video_list", list_file=_train_list, clip=dict(sampling="pair", min_gap=4, max_gap=48)),
            transform=dict(type="video_resized_crop", size=224, scale=(0.5, 1.0), flip=True), batch_size=32,
            num_workers=10)
# One iteration = one batch per process: 64 processes x 32 pairs = 2048 (or accumulate).
_batch = 2048
_iters_per_epoch = 240436 // _batch
schedule = dict(max_iters=400 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1.5e-4,
                weight_decay=0.05, betas=(0.9, 0.95), iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
# `maekit video-propagate siammae_vit_small_k400 --checkpoint ... --davis data/davis2017`: DAVIS-2017
# val at CropMAE's 480 x 880, top-k 7, radius 20 patches, 20 context frames + the first, temperature 0.7.
propagation = dict(size=(480, 880), topk=7, radius=20, context=20, temperature=0.7, resolution="480p")
