# AttMask-High on scikit-learn's digits at the budget of core's mae_demo_digits (its encoder: 128
# wide, 4 blocks, patch 4 on 32×32 → 64 patches; 1000 iterations of batch 64, about 45 epochs).
# Crops scaled from the README's: 2 global crops of 32 (scale 0.35-1), 2 local crops of 16 (scale
# 0.1-0.4; the README has 10 of 96 px); brightness/contrast jitter and blur (grey images:
# saturation, hue and grayscale have nothing to act on; no flip, no solarisation: digits are not
# mirror-symmetric and are near binary). Settings for a short, small run, each a DINO/iBOT option:
# head to 256 (hidden 256, bottleneck 64) instead of 8192 (2048, 256), its last layer's norm fixed
# (norm_last_layer=True, DINO's stable default), teacher temperature 0.04 throughout (DINO's
# default; the README warms up to 0.07), teacher momentum 0.99 → 1 over the run (the README's
# 20 %-of-ImageNet setting), lr 5e-4·B/256 as the README.
_base_ = ["./_digits_demo.py"]
model = dict(type="attmask", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4,
             in_chans=1, encoder=dict(embed_dim=128, depth=4, num_heads=4), mode="high", out_dim=256,
             head_hidden_dim=256, head_bottleneck_dim=64, norm_last_layer=True,
             momentum=dict(type="cosine", start=0.99, end=1.0, length=None),
             teacher_temp=0.04, patch_temp=0.04, drop_path_rate=0.1)
_jitter = [dict(type="color_jitter", brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0, p=0.8)]
_local = [dict(type="resized_crop", size=16, scale=(0.1, 0.4)), *_jitter, dict(type="gaussian_blur", sigma=(0.1, 1.0), p=0.5, kernel_size=3)]
data = dict(transform=dict(_delete_=True, type="views", views=dict(
    global_1=[dict(type="resized_crop", size=32, scale=(0.35, 1.0)), *_jitter, dict(type="gaussian_blur", sigma=(0.1, 1.0), p=1.0, kernel_size=3)],
    global_2=[dict(type="resized_crop", size=32, scale=(0.35, 1.0)), *_jitter, dict(type="gaussian_blur", sigma=(0.1, 1.0), p=0.1, kernel_size=3)],
    local_1=_local, local_2=_local)))
schedule = dict(blr=5e-4, weight_decay=0.04, betas=(0.9, 0.999), clip_grad=3.0)
probe = dict(pools=("cls", "mean"))
