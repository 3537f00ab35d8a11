# AMT on scikit-learn's digits at the budget of core's mae_demo_digits (its encoder, decoder, data
# and schedule: 1000 iterations of batch 64, about 45 epochs of 22 iterations). The reference's
# 40 random epochs and refreshes every 40 of its 400 are scaled to 5 and 5 (maps recomputed after
# epochs 5, 10, ..., 40). Raw-pixel MSE as the release; crops record their geometry so the maps
# follow them. Mask 0.45, throw 0.40 of 64 patches: 28 masked, 26 thrown, 10 visible.
_base_ = ["./_digits_demo.py"]
model = dict(type="amt", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4,
             in_chans=1, encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.45, throw_ratio=0.40, warmup_mask_ratio=0.75, norm_pix_loss=False)
data = dict(transform=dict(track_geometry=True))
custom_hooks = [dict(type="AMTAttentionHook", random_epochs=5, refresh_epochs=5)]
