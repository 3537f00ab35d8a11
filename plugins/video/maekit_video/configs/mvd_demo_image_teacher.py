# The image teacher `maekit demo mvd` trains first: a tiny MAE on scikit-learn's digit images (32x32,
# repeated to 3 channels, 4-pixel patches like the student's cubes), the core MAE demo's recipe.
model = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=3,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, norm_pix_loss=True)
data = dict(dataset=dict(type="digits", split="train", size=32, channels=3),
            transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False), batch_size=64, num_workers=0)
schedule = dict(max_iters=1000, warmup_iters=50, blr=5e-3, weight_decay=0.05, betas=(0.9, 0.95))
checkpoint_interval = 1000
log_interval = 50
seed = 0
