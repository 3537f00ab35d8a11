# The 3-D masked image modelling seed on nibabel's bundled T1 volume: the whole volume resized to
# 32³, patch 8³ (64 tokens), mask 0.75, raw voxels; encoder 96 × 4, decoder 48 × 1. (At scale:
# mri_volumes over your NIfTI folder at 96³, patch 16³, encoder 384 × 12 — `mri_mim3d` defaults.)
_base_ = ["edge_mae_brats.py"]
model = dict(_delete_=True, type="mri_mim3d", img_size=32, patch_size=8, mask_ratio=0.75, embed_dim=96, depth=4,
             num_heads=4, decoder_embed_dim=48, decoder_depth=1, decoder_num_heads=4)
data = dict(_delete_=True,
            dataset=dict(type="mri_volumes", files=["nibabel:anatomical.nii"], size=32),
            batch_size=1,
            num_workers=0)
schedule = dict(max_iters=200, warmup_iters=10, blr=1e-1, weight_decay=0.05)
checkpoint_interval = 200
log_interval = 50
