# iGPT-S (24 blocks, 512 wide, 8 heads) at 32×32 with iGPT's 512-colour palette, on your image folder
# (data.dataset.root=...). The palette is fitted on the first 5000 training images before the first
# step (or give model.palette.centres_file=kmeans_centers.npy, iGPT's released 512×3 palette).
# Paper recipe: Adam (0.9, 0.95), batch 128, warm-up then cosine, no dropout, no weight decay.
model = dict(type="igpt", objective="autoregressive", img_size=32, channels=3, num_colors=512, embed_dim=512, depth=24,
             num_heads=8)
data = dict(
    dataset=dict(type="image_folder", root="data/train", channels=3),
    transform=dict(type="mae_augment", size=32, scale=(0.25, 1.0), flip=True, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    batch_size=128,
    num_workers=8,
)
schedule = dict(max_iters=1_000_000, warmup_iters=5000, blr=2e-3, weight_decay=0.0, betas=(0.9, 0.95), min_lr=0.0)
checkpoint_interval = 5000
log_interval = 100
probe = dict(train=dict(type="image_folder", root="data/train"), test=dict(type="image_folder", root="data/val"),
             pools=("mean",), layer=12)
