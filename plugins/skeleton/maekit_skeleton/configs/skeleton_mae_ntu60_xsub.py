# SkeletonMAE (Wu et al.) on NTU RGB+D 60, cross-subject, with MAMP's recipe where the paper is
# silent: 120-frame clips in 4-frame segments (30 × 25 = 750 tokens per body), encoder 8 × 256 × 8
# heads, decoder 3 × 256, spatial-temporal masking (60 % of the joints ∪ 75 % of the segments =
# 90 % of the tokens, MAMP's ratio), per-token normalised coordinate targets (MAMP's
# norm_skes_loss), AdamW (0.9, 0.95) wd 0.05, lr 1e-3 for MAMP's 4 GPUs × 32 clips = 128 per step
# (maekit's blr is per 256: 2e-3), 400 epochs, 20 of warm-up, cosine to 5e-4.
# Data once: `maekit skeleton-preprocess nturgb+d_skeletons --out /data/ntu/NTU60_XSub.npz
#   --benchmark xsub --subset ntu60 --ignore-list NTU_RGBD_samples_with_missing_skeletons.txt`
_npz = "/data/ntu/NTU60_XSub.npz"
_train_clips = 40091
_batch = 128
_epoch = _train_clips // _batch
model = dict(type="skeleton_mae", num_frames=120, segment=4, embed_dim=256, depth=8, num_heads=8,
             decoder_embed_dim=256, decoder_depth=3, decoder_num_heads=8,
             masker=dict(type="skeleton_spatiotemporal_masker", joint_ratio=0.6, frame_ratio=0.75),
             target="coordinates", norm_target=True)
data = dict(dataset=dict(type="ntu_npz", path=_npz, split="train"),
            transform=dict(type="skeleton_augment", num_frames=120, crop=(0.5, 1.0), rotation=0.3),
            batch_size=_batch, num_workers=8)
eval_transform = dict(type="skeleton_eval_transform", num_frames=120, crop=0.95)
schedule = dict(max_iters=400 * _epoch, warmup_iters=20 * _epoch, blr=1e-3 * 256 / _batch, weight_decay=0.05,
                betas=(0.9, 0.95), min_lr=5e-4, clip_grad=None, nonfinite="stop")
# MAMP's linear evaluation: frozen encoder, BatchNorm (no affine) + Linear, SGD lr 0.1, 100 epochs
linear_eval = dict(train=dict(type="ntu_npz", path=_npz, split="train"),
                   test=dict(type="ntu_npz", path=_npz, split="test"),
                   num_classes=60, epochs=100, batch_size=128, lr=0.1)
# MAMP's fine-tuning: 100 epochs, 5 warm-up, batch 24 per GPU × 2, lr 5e-4, layer decay 0.8,
# drop path 0.3, dropout 0.3 in the head, label smoothing 0.1
_ft_batch = 48
_ft_epoch = _train_clips // _ft_batch
finetune = dict(
    classifier="skeleton_classifier", num_classes=60, drop_path_rate=0.3, label_smoothing=0.1,
    data=dict(dataset=dict(type="ntu_npz", path=_npz, split="train"),
              transform=dict(type="skeleton_augment", num_frames=120, crop=(0.5, 1.0), rotation=0.3),
              batch_size=_ft_batch, num_workers=8),
    test=dict(type="ntu_npz", path=_npz, split="test"),
    schedule=dict(max_iters=100 * _ft_epoch, warmup_iters=5 * _ft_epoch, blr=5e-4 * 256 / _ft_batch,
                  weight_decay=0.05, betas=(0.9, 0.999), min_lr=1e-5, layer_decay=0.8),
)
checkpoint_interval = 20 * _epoch
log_interval = 50
seed = 0
