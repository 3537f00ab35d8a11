# Edge-MAE pre-training (Li et al., SLMT-Net) on BraTS 2020: every contrast (t1, t2, t1ce, flair)
# as single-channel 256×256 slices (foreground 0.2–99.8 percentile clip, [0, 1], crop
# [10:210, 25:225], axial slices 50–109, 80/20 subject split), patch 8 (1024 tokens), mask 0.7,
# encoder 128 wide × 12 blocks × 16 heads, decoder 64 × 8 × 8, loss 10·pixels + edges with the
# patch-wise weight. Adam lr 3e-3, betas (0.9, 0.95), batch 20 (maekit's blr is per 256 samples:
# 3e-3 · 256 / 20), 100 epochs, cosine after 5 warm-up epochs (the note's alternative schedule).
# Preprocess once: `maekit mri-preprocess /data/BraTS2020/train --out /data/BraTS2020-slices`.
_subjects = 295  # 80% of the 369 BraTS 2020 training subjects
_batch = 20
_epoch = _subjects * 4 * 60 // _batch
model = dict(type="edge_mae", img_size=256, patch_size=8, embed_dim=128, depth=12, num_heads=16,
             decoder_embed_dim=64, decoder_depth=8, decoder_num_heads=8, mask_ratio=0.7,
             rec_weight=10.0, edge_weight=1.0, patch_wise=True)
data = dict(
    dataset=dict(type="mri_slices", cache="/data/BraTS2020-slices", contrasts=["t1", "t2", "t1ce", "flair"],
                 split="train"),
    transform=dict(type="mri_augment", p=0.5),
    batch_size=_batch,
    num_workers=8,
)
schedule = dict(max_iters=100 * _epoch, warmup_iters=5 * _epoch, blr=3e-3 * 256 / _batch, weight_decay=0.0,
                betas=(0.9, 0.95), clip_grad=None, min_lr=0.0, nonfinite="stop")
checkpoint_interval = 5 * _epoch
log_interval = 50
seed = 0
