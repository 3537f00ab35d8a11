# SdAE on scikit-learn's digits at exactly the budget of core's mae_demo_digits (same encoder,
# decoder width and depth, data, schedule). 48 of 64 tokens removed → 3 folds of 16 through the
# teacher; 45 epochs of 22 iterations → 45 teacher updates. Demo choices: the reference's
# short-schedule momentum (0.9 → 0.95, its issue #3, for 100 epochs) rather than 0.96 → 0.99 for
# 300; drop-path 0.1 (the paper's 0.25 is for ViT-B).
_base_ = ["./_digits_demo.py"]
_epochs = 1000 // (1437 // 64)
model = dict(type="sdae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, num_folds=3, cos_dim="tokens", epochs=_epochs,
             momentum=dict(type="cosine", start=0.9, end=0.95, length=_epochs, by_epoch=True), drop_path_rate=0.1)
