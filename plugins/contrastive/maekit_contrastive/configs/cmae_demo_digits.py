# CMAE on scikit-learn's digits at the budget of core's mae_demo_digits. Views scaled from the
# reference's 224-of-256 with shifts of 0–31 px: a shared crop to 36 px (scale 0.35–1 as core's
# demo; no flip — digits are not mirror-symmetric), the online view its top-left 32, the target
# view a 32 crop shifted by 0–4 px with brightness/contrast jitter (p 0.8) and blur (p 0.5; grey
# images: saturation, hue and grayscale have nothing to act on). 2×2 blocks of the 8×8 grid at
# 0.65: int(16·0.35) = 5 of 16 blocks (20 of 64 tokens) visible. Decoders at the demo's width
# (pixel 64-d × 2 blocks as core's demo, feature 64-d × 2 blocks → 128).
_base_ = ["./_digits_demo.py"]
model = dict(type="cmae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4,
             feature_decoder_depth=2, projector_dim=64, mask_ratio=0.65, mask_block=2, momentum=0.996)
data = dict(transform=dict(
    type="views",
    shared=[dict(type="resized_crop", size=36, scale=(0.35, 1.0))],
    views=dict(online=[dict(type="crop", size=32, position="top_left")],
               target=[dict(type="crop", size=32, position="shift", max_shift=4),
                       dict(type="color_jitter", brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0, p=0.8),
                       dict(type="gaussian_blur", sigma=(0.1, 1.0), p=0.5, kernel_size=3)])))
