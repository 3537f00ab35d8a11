# SMAUG-style pre-training (Lin et al., ICCV 2023; no code was released, so the sparsifier's rule and these
# keep ratios are this toolkit's choices, not the paper's verified settings): SimVTP's WebVid recipe with the
# token sparsifier reading block 6 of 12, keeping 3/4 of the time slices and half the visible cubes in each.
_base_ = ["./simvtp_vit_base_webvid.py"]
model = dict(type="smaug", sparsifier=dict(layer=6, keep_tokens=0.5, keep_frames=0.75))
