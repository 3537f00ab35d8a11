# The demo's unmasked-tuning phase: mask ratio 0, a short low-lr run from the demo's checkpoint:
#   maekit train flip_demo_digits_unmasked --cfg-options load_from=work_dirs/flip_demo_digits/iter_400.pth
_base_ = ["./flip_demo_digits.py"]
model = dict(mask_ratio=0.0)
schedule = dict(max_iters=100, warmup_iters=20, blr=2e-4)
checkpoint_interval = 100
load_from = None
