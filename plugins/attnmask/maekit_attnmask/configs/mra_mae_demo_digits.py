# MRA's augmentor: core's digits MAE (its encoder, decoder, data and 1000-iteration schedule)
# trained on raw pixels (norm_pix_loss=False), so its reconstructions are images.
_base_ = ["./_digits_demo.py"]
model = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, norm_pix_loss=False)
