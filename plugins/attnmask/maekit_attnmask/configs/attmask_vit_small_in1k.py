# AttMask-High ViT-S/16 on ImageNet-1k, the README's 100-epoch run: 2 global crops of 224 (scale
# 0.25-1) and 10 local crops of 96 (0.05-0.25), flip, colour jitter (0.4, 0.4, 0.2, 0.1; p 0.8),
# grayscale 0.2, blur (p 1.0 / 0.1 / 0.5) and solarisation (second global, p 0.2); batch 4×60,
# AdamW lr 5e-4·B/256, 10 warm-up epochs, weight decay 0.04 (the release raises it to 0.4 by a
# cosine: a constant here), clip 3. Point data.dataset.root at an ImageFolder tree.
_processes = 4
_iters_per_epoch = 1281167 // (60 * _processes)
model = dict(type="attmask", size="small", img_size=224, mode="high", out_dim=8192, norm_last_layer=False,
             drop_path_rate=0.1)
_colour = [dict(type="hflip", p=0.5), dict(type="color_jitter", brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8),
           dict(type="grayscale", p=0.2)]
_local = [dict(type="resized_crop", size=96, scale=(0.05, 0.25)), *_colour, dict(type="gaussian_blur", sigma=(0.1, 2.0), p=0.5)]
data = dict(
    dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
    transform=dict(type="views", views=dict(
        global_1=[dict(type="resized_crop", size=224, scale=(0.25, 1.0)), *_colour, dict(type="gaussian_blur", sigma=(0.1, 2.0), p=1.0)],
        global_2=[dict(type="resized_crop", size=224, scale=(0.25, 1.0)), *_colour, dict(type="gaussian_blur", sigma=(0.1, 2.0), p=0.1),
                  dict(type="solarize", threshold=0.5, p=0.2)],
        **{f"local_{i}": _local for i in range(1, 11)})),
    batch_size=60,
    num_workers=10,
)
schedule = dict(max_iters=100 * _iters_per_epoch, warmup_iters=10 * _iters_per_epoch, blr=5e-4,  # lr = 5e-4·B/256
                weight_decay=0.04, betas=(0.9, 0.999), clip_grad=3.0, min_lr=1e-6)
checkpoint_interval = 5 * _iters_per_epoch
log_interval = 50
seed = 0
probe = dict(pools=("cls", "mean"))
