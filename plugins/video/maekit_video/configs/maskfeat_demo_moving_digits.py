# Tiny MaskFeat on the demo's moving digits: 2x8x8 cubes (4 x 4 x 4 = 64 tokens; HOG needs 8-pixel
# cells, 27 values per cube), cuboid masks at 40 % of a 4x2x2 window, mask tokens inside the encoder.
_base_ = ["./videomae_demo_moving_digits.py"]
model = dict(_delete_=True, type="maskfeat", size=None, video=True, encoder=dict(embed_dim=128, depth=4, num_heads=4),
             num_frames=8, img_size=32, patch_size=8, tubelet_size=2, mask_ratio=0.4)
schedule = dict(blr=3e-3, betas=(0.9, 0.999))
