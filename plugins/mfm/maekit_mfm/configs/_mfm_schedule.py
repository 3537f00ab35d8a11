# The MFM pre-training recipe (Xie et al. 2023; the reference's configs): AdamW (0.9, 0.95),
# eps 1e-8, weight decay 0.05, cosine, grad clip 3.0, lr 3e-4 × total_batch / 512 — which is
# maekit's blr 1.5e-4 × total_batch / 256. Minimum lr 2.5e-6 × total_batch / 512 (1e-5 at 2048).
schedule = dict(blr=1.5e-4, weight_decay=0.05, betas=(0.9, 0.95), accumulate=1, clip_grad=3.0,
                nonfinite="stop", min_lr=1e-5)
log_interval = 50
seed = 0
