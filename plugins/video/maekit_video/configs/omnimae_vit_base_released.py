# OmniMAE ViT-B with the masking of the released configs (omnimae_vitbase_ssv2_in1k.yaml): 75 % of
# image patches, 90 % of video cubes (the paper reports 90 % / 95 %; both are offered).
_base_ = ["./omnimae_vit_base.py"]
model = dict(image_mask_ratio=0.75, video_mask_ratio=0.9)
