# BootMAE on scikit-learn's digits at exactly the budget of core's mae_demo_digits (same encoder,
# data, schedule), so `maekit demo bootmae` compares it with plain MAE fairly. Decoders at the
# demo's width (pixel 64, feature = encoder 128; 2 blocks, 4 heads). 45 epochs of 22 iterations:
# the paper's momentum schedule gives 0.999 → 0.9994 over them, and the feature-loss ramp is the
# paper's (full at 25% of the epochs). (A faster teacher, 0.99 → 0.995, did worse: README.)
_base_ = ["./_digits_demo.py"]
_epochs = 1000 // (1437 // 64)
model = dict(type="bootmae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, epochs=_epochs, feature_weight=1.0)
