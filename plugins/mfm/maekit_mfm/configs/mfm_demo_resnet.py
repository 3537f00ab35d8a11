# Tiny MFM with a CNN (timm resnet18, stride 32) on scikit-learn's digits (32×32, one channel):
# the ViT demo's data and recipe, low-pass probability 0.3 as the paper's ResNet-50 config.
_base_ = ["./mfm_demo_vit.py"]

# zero_init_last=False: with timm's default zero-initialised residual branches, an untrained ResNet
# reads a 32-px image only through its stride-2 1×1 shortcuts — i.e. one corner pixel, background on
# digits — so the random-init baseline would be a constant (probe 0.18, the majority class).
model = dict(_delete_=True, type="mfm", encoder_name="resnet18", img_size=32, in_chans=1, corruption="frequency",
             radius_inner=2, radius_outer=999, sample_ratio=0.3, encoder=dict(zero_init_last=False))
schedule = dict(max_iters=400, warmup_iters=20, blr=2e-3)
checkpoint_interval = 400
# a CNN has no class token: the probe reads the global average pool
probe = dict(pools=("mean",))
finetune = None  # maekit's fine-tuning is the ViT recipe; CNNs are evaluated by the probe
