# Plain MAE with the distillation demo's student (4 blocks x 64) at the same budget as its DMAE and
# TinyMIM students (core's mae_demo_digits recipe: norm-pix, mask 0.75, 1000 iterations of 64).
_base_ = ["./_digits_demo.py"]
model = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=64, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, norm_pix_loss=True)
