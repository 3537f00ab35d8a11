# Tiny MT-Net on the demo's T1 → simulated-contrast pairs (see maekit_mri.data.simulated_contrast):
# a quarter of the training slices are paired (pre-training saw all of them, unpaired); scored on
# every fifth slice of each axis (held out). The demo sets
# model.pretrained to its Edge-MAE checkpoint (or leaves it None: from scratch).
_base_ = ["mtnet_brats_t1_t2.py"]
model = dict(encoder=dict(img_size=32, patch_size=4, embed_dim=96, depth=4, num_heads=4, decoder_embed_dim=48,
                          decoder_depth=2, decoder_num_heads=4),
             skip_layers=(0, 2, 4), dim=32, num_heads=4, consistency_layers=4)
data = dict(_delete_=True,
            dataset=dict(type="mri_demo_slices", split="train", size=32, pairs=True, paired_every=4),
            batch_size=16,
            num_workers=0)
schedule = dict(max_iters=800, warmup_iters=40, blr=1.6e-2)
checkpoint_interval = 800
log_interval = 50
synthesis = dict(_delete_=True, dataset=dict(type="mri_demo_slices", split="test", size=32, pairs=True))
