# Tiny Edge-MAE on nibabel's bundled T1 volume and its simulated second contrast, unpaired (as the
# paper pre-trains on every contrast): training slices along all three axes, 32 px, patch 4 → 64
# tokens, mask 0.7; a few minutes on 2 CPU cores.
_base_ = ["edge_mae_brats.py"]
model = dict(img_size=32, patch_size=4, embed_dim=96, depth=4, num_heads=4, decoder_embed_dim=48, decoder_depth=2,
             decoder_num_heads=4)
data = dict(_delete_=True,
            dataset=dict(type="mri_demo_slices", split="train", size=32, contrasts=("t1", "simulated")),
            transform=dict(type="mri_augment", p=0.5),
            batch_size=32,
            num_workers=0)
schedule = dict(max_iters=1500, warmup_iters=50, blr=2e-2)
checkpoint_interval = 1500
log_interval = 50
