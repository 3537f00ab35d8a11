# iGPT on scikit-learn's digits at 16×16 palette pixels (256 tokens, one grey channel): a 16-colour
# palette fitted on the training digits, a 4-block 128-wide GPT, raster-order autoregression.
# Batch 32, 600 iterations (13 epochs): every image is a 256-token sequence, each step ~16× the
# work of MAE's demo. Pixels in [-1, 1] (mean 0.5, std 0.5), as iGPT scales them. The probe reads
# the mean-pooled, layer-normed output of block 2 of 4 (iGPT's best layers are in the middle).
model = dict(type="igpt", objective="autoregressive", img_size=16, channels=1, num_colors=16, embed_dim=128, depth=4,
             num_heads=4, palette=dict(fit_samples=1437))
data = dict(
    dataset=dict(type="digits", split="train", size=16, channels=1),
    transform=dict(type="mae_augment", size=16, scale=(0.6, 1.0), flip=False, mean=(0.5,), std=(0.5,)),
    batch_size=32,
    num_workers=0,
)
# iGPT: Adam (0.9, 0.95), no weight decay, warm-up then cosine to zero; lr = blr × 32 / 256 = 1e-3
schedule = dict(max_iters=600, warmup_iters=30, blr=8e-3, weight_decay=0.0, betas=(0.9, 0.95), min_lr=0.0)
checkpoint_interval = 300
log_interval = 50
probe = dict(train=dict(type="digits", split="train", size=16, channels=1),
             test=dict(type="digits", split="test", size=16, channels=1), pools=("mean",), layer=2)
