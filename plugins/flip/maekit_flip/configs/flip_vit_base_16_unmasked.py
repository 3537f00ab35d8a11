# FLIP's unmasked tuning: continue from the masked pre-training with mask ratio 0 (official
# config: blr 4e-8 per 256 samples, warm-up a fifth of the phase). The length here, 2,000 steps
# (≈ 0.3 epoch of LAION-400M at 65,536), is a short phase as the paper describes. Start it with
#   maekit train flip_vit_base_16_unmasked --cfg-options load_from=work_dirs/flip_vit_base_16/iter_195000.pth
# (load_from loads the weights only; the optimizer and schedule start afresh).
_base_ = ["./flip_vit_base_16.py"]
model = dict(mask_ratio=0.0)
schedule = dict(max_iters=2_000, warmup_iters=400, blr=4e-8)
load_from = None
