# Tiny FLIP on scikit-learn's digits with templated captions ("a photo of the number seven."):
# a few minutes on 2 CPU cores. Image tower: 32 px, patch 4, 4 blocks of width 128; text tower:
# 2 blocks of width 128; 64-wide shared space; mask ratio 0.5.
model = dict(type="flip", encoder_name="vit_base_patch16_clip_224", img_size=32, patch_size=4, in_chans=3,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), fixed_pos_embed=True, pool="mean",
             embed_dim=64, mask_ratio=0.5, text=dict(width=128, depth=2, num_heads=4, context_length=77))
data = dict(
    dataset=dict(type="flip_digits_captions", split="train", size=32, channels=3),
    transform=dict(type="mae_augment", size=32, scale=(0.6, 1.0), flip=False),
    batch_size=128,
    num_workers=0,
)
schedule = dict(max_iters=400, warmup_iters=40, blr=2e-3, weight_decay=0.2, betas=(0.9, 0.98), min_lr=0.0)
checkpoint_interval = 400
log_interval = 50
seed = 0
zeroshot = dict(dataset=dict(type="flip_digits_captions", split="test", size=32, channels=3),
                templates=["a photo of the number {}.", "a handwritten {}.", "the digit {}.",
                           "a drawing of a {}.", "a scan of the number {}."])
retrieval = dict(dataset=dict(type="flip_digits_captions", split="test", size=32, channels=3))
probe = dict(train=dict(type="digits", split="train", size=32, channels=3),
             test=dict(type="digits", split="test", size=32, channels=3), pools=("mean", "cls"))
