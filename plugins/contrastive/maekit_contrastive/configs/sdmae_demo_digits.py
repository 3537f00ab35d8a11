# SDMAE on scikit-learn's digits at the budget of core's mae_demo_digits. Views as the reference's
# (Resize 256 then 224 crops) scaled: shorter side to 36, the first view its top-left 32 crop, the
# second a random 32 crop with brightness/contrast jitter (p 0.8; no flip — digits are not
# mirror-symmetric). One mask 0.75 for both. Decoder 64-d × 1 block × 4 heads (the reference's
# 1 block at the demo's width); the contrastive head works at the pixel width p²·C = 16 (2 blocks,
# 2 heads, MLP 256), as the reference's reads the decoder's pixel outputs. Norm-pix targets (the
# reference's --norm_pix_loss flag; its default is off): with raw pixels the demo's linear probe
# fell below random init (0.947 vs 0.958; README).
_base_ = ["./_digits_demo.py"]
model = dict(type="sdmae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=1,
             decoder_num_heads=4, contrastive_heads=2, mlp_dim=256, mask_ratio=0.75, norm_pix_loss=True)
data = dict(transform=dict(
    type="views",
    shared=[dict(type="resize", size=36)],
    views=dict(first=[dict(type="crop", size=32, position="top_left")],
               second=[dict(type="crop", size=32, position="random"),
                       dict(type="color_jitter", brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0, p=0.8)])))
