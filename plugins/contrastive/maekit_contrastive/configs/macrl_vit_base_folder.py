# MACRL ViT-B/16 — no code was released and the paper's recipe could not be read here: every
# value below is ours (MAE's recipe: blr 1.5e-4, AdamW (0.9, 0.95), weight decay 0.05, 40 warm-up
# of 400 epochs, batch 256 per process). Branch A (strong): RandomResizedCrop 224 (0.2–1), flip,
# ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, blur p 0.5, mask 0.75; branch B (weak):
# RandomResizedCrop 224 (0.5–1) and flip, mask 0.5. Point data.dataset.root at an ImageFolder tree.
_processes = 8
_train_images = 1281167
_iters_per_epoch = _train_images // (256 * _processes)
model = dict(type="macrl", size="base", img_size=224, patch_size=16, strong_mask_ratio=0.75, weak_mask_ratio=0.5,
             temperature=0.2, queue=4096)
data = dict(
    dataset=dict(type="image_folder", root="/data/imagenet/train", channels=3),
    transform=dict(
        type="views",
        views=dict(strong=[dict(type="resized_crop", size=224, scale=(0.2, 1.0)), dict(type="hflip"),
                           dict(type="color_jitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8),
                           dict(type="grayscale", p=0.2), dict(type="gaussian_blur", sigma=(0.1, 2.0), p=0.5)],
                   weak=[dict(type="resized_crop", size=224, scale=(0.5, 1.0)), dict(type="hflip")])),
    batch_size=256,
    num_workers=10,
)
schedule = dict(max_iters=400 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1.5e-4, weight_decay=0.05,
                betas=(0.9, 0.95), accumulate=1, clip_grad=None, nonfinite="stop", min_lr=0.0)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
