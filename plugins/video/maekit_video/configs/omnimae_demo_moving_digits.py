# Tiny OmniMAE on the demo's data: scikit-learn's digit images (3 channels, each repeated to one 2-frame
# tubelet) and the moving-digit clips, every batch from one source; random masking at the released
# configs' 0.75 images / 0.9 videos (the paper's 0.9 / 0.95 leave too little of a 32x32 digit). Probed
# on the clips like the VideoMAE demo.
_base_ = ["./videomae_demo_moving_digits.py"]
model = dict(_delete_=True, type="omnimae", size=None, encoder=dict(embed_dim=128, depth=4, num_heads=4),
             num_frames=8, img_size=32, patch_size=4, tubelet_size=2, image_mask_ratio=0.75, video_mask_ratio=0.9,
             decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4)
data = dict(
    dataset=dict(_delete_=True, type="concat_sources", sources=[
        dict(name="digit_images", dataset=dict(type="digits", split="train", size=32, channels=3),
             transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False)),
        dict(name="moving_digits", dataset=dict(type="video_demo_moving_digits", split="train"),
             transform=dict(type="videomae_augment", size=32, scales=(1.0, 0.875)))]),
    transform=None, sampler="one_source_per_batch")
