# BEiT on scikit-learn's digits at 32×32 (one channel, patch 4 → an 8×8 grid, 64 tokens): a VQ
# tokenizer with one code per 4×4-pixel patch (64 codes of 32 numbers, vector-quantize-pytorch,
# k-means init, 600 steps) trained on the training digits first, then BEiT predicts the codes of 25
# of the 64 patches (~40%, BEiT's 75 of 196), masked in blocks of at least 5 (BEiT's 16 of 196 scaled).
# Encoder as core's MAE demo (128 wide, 4 blocks, 4 heads), layer scale 0.1, no drop path.
# Measured (README): 64 codes beat 32 and 256 on the probes; BEiT's probes get worse with a higher lr
# (blr 5e-3, MAE demo's) and with 2000 iterations instead of 1000 at that lr.
model = dict(type="beit", size=None, img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4, init_values=0.1), drop_path_rate=0.0,
             num_masking=25, min_block=5,
             tokenizer=dict(type="vq", patch_size=4, in_chans=1, vocab_size=64, code_dim=32, hidden=64,
                            fit_samples=1437, fit_steps=600, fit_batch=64, lr=2e-3))
data = dict(
    dataset=dict(type="digits", split="train", size=32, channels=1),
    transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
    batch_size=64,
    num_workers=0,
)
# BEiT's optimiser (AdamW 0.9/0.999, weight decay 0.05, clip 3.0); lr 3.75e-4 at batch 64; core's MAE
# demo's budget (1000 iterations of 64)
schedule = dict(max_iters=1000, warmup_iters=50, blr=1.5e-3, weight_decay=0.05, betas=(0.9, 0.999), min_lr=0.0,
                clip_grad=3.0)
checkpoint_interval = 500
log_interval = 50
seed = 0
probe = dict(train=dict(type="digits", split="train", size=32, channels=1),
             test=dict(type="digits", split="test", size=32, channels=1))
