# BootMAE on scikit-learn's digits at exactly the budget of core's mae_demo_digits (same encoder,
# data, schedule), so `maekit demo bootmae` compares it with plain MAE fairly. Decoders at the
# demo's width (pixel 64, feature = encoder 128; 2 blocks, 4 heads). 45 epochs of 22 iterations.
# Demo choice: momentum 0.99 → 0.995 over the run instead of the paper's 0.999 → 0.99999 (made for
# ~1M steps, it would leave a 1000-step teacher almost where it started); the feature-loss ramp is
# the paper's (full at 25% of the epochs).
_base_ = ["./_digits_demo.py"]
_epochs = 1000 // (1437 // 64)
model = dict(type="bootmae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, epochs=_epochs, feature_weight=1.0,
             momentum=dict(type="piecewise", points=[(0, 0.99), (_epochs, 0.995)], by_epoch=True))
