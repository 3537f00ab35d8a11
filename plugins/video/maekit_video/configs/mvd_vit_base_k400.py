# MVD ViT-B distilled from ViT-B teachers on Kinetics-400 as ruiwang2021/mvd's
# scripts/mvd_vit_base_from_vit_base_teacher_epoch_400: 16 frames at stride 4, multi-scale crops (as
# VideoMAE), tube masking 0.9, two feature decoders (768 wide, 2 blocks, 12 heads), SmoothL1 1:1 on
# the teachers' last blocks before their final norms; 400 epochs, 40 warm-up, batch 1024 (16 x 2
# accumulated x 32 processes), AdamW (0.9, 0.95), wd 0.05, lr 1.5e-4 and min_lr 1e-4 both x batch / 256,
# drop path 0.1.
# Teachers: MAE's mae_pretrain_vit_base.pth and VideoMAE's K400 ViT-B pre-training checkpoint
# (k400_videomae_pretrain_base_patch16_224_frame_16x4_tube_mask_ratio_0.9_e1600.pth), official layouts.
_train_list = "data/k400/train.csv"
_clip = dict(sampling="consecutive", num_frames=16, stride=4, pad=True)
model = dict(type="mvd", size="base", num_frames=16, img_size=224, mask_ratio=0.9, decoder_depth=2, drop_path_rate=0.1,
             image_teacher=dict(size="base", checkpoint="checkpoints/mae_pretrain_vit_base.pth", layout="official"),
             video_teacher=dict(size="base", layout="official",
                                checkpoint="checkpoints/k400_videomae_pretrain_base_patch16_224_frame_16x4_tube_mask_ratio_0.9_e1600.pth"))
data = dict(dataset=dict(type="video_list", list_file=_train_list, clip=_clip),
            transform=dict(type="videomae_augment", size=224), batch_size=16, num_workers=10)
_batch = 1024  # one iteration = 16 clips per process; set accumulation and processes to reach it
_iters_per_epoch = 240436 // _batch
schedule = dict(max_iters=400 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1.5e-4,
                weight_decay=0.05, betas=(0.9, 0.95), min_lr=1e-4 * _batch / 256, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
eval_transform = dict(type="video_eval", size=224)
