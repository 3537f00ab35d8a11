# Tiny SiamMAE on the demo's moving digits (scikit-learn digits moving over 32x32 for 16 frames,
# H.264 .mp4 read back through the video-list loader): frame pairs 2-8 frames apart, one crop and
# flip for both, 4-pixel patches (64 per frame), the future frame masked at 0.95 (3 patches kept),
# encoder 4 x 128, cross-self decoder 2 x 64; minutes on 2 CPU cores. The demo propagates each test
# clip's first-frame digit mask through its frames (J&F); figures in the README.
model = dict(type="siammae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.95, architecture="cross_self")
data = dict(dataset=dict(type="video_demo_moving_digits", split="train", clip=dict(sampling="pair", min_gap=2, max_gap=8)),
            transform=dict(type="video_resized_crop", size=32, scale=(0.5, 1.0), flip=True), batch_size=64,
            num_workers=1)
schedule = dict(max_iters=1000, warmup_iters=50, blr=5e-3, weight_decay=0.05, betas=(0.9, 0.95))
checkpoint_interval = 1000
log_interval = 50
seed = 0
# frames at their own 32 x 32; the settings are SiamMAE's (the radius covers the whole 8 x 8 grid)
propagation = dict(size=(32, 32), topk=7, radius=20, context=20, temperature=0.7)
