# MACRL (our reading; no code was released) on scikit-learn's digits at the budget of core's
# mae_demo_digits. Independent crops per branch: strong = crop scale 0.35–1, brightness/contrast
# jitter 0.4 (p 0.8), blur (p 0.5), Gaussian noise σ 0.05; weak = crop scale 0.6–1 only. Masks 0.75
# (strong) and 0.5 (weak); decoder 64-d × 2 blocks as core's demo; a bank of 1024 negatives (the
# digits' 1437 training images would repeat in a 4096 bank within three passes). L1 on norm-pix
# targets and contrastive weight 0.1: with raw pixels and weight 1 the linear probe fell below
# random init (0.939 vs 0.958), with norm-pix and weight 1 too (0.953); README.
_base_ = ["./_digits_demo.py"]
model = dict(type="macrl", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, strong_mask_ratio=0.75, weak_mask_ratio=0.5, projector_hidden=256,
             projector_dim=64, temperature=0.2, queue=1024, norm_pix_loss=True,
             contrastive_weight=0.1)
data = dict(transform=dict(
    type="views",
    views=dict(strong=[dict(type="resized_crop", size=32, scale=(0.35, 1.0)),
                       dict(type="color_jitter", brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0, p=0.8),
                       dict(type="gaussian_blur", sigma=(0.1, 1.0), p=0.5, kernel_size=3),
                       dict(type="noise", std=0.05)],
               weak=[dict(type="resized_crop", size=32, scale=(0.6, 1.0))])))
