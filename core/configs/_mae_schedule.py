# The MAE pre-training recipe (He et al. 2022, Table / appendix A.1), per iteration.
schedule = dict(blr=1.5e-4, weight_decay=0.05, betas=(0.9, 0.95), accumulate=1, clip_grad=None,
                nonfinite="stop", min_lr=0.0)
log_interval = 50
seed = 0
