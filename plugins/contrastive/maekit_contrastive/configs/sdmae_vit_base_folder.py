# SDMAE ViT-B/16 as the reference's main_pretrain.py defaults: batch 64 per process, blr 1e-3,
# AdamW (0.9, 0.95), weight decay 0.05, 40 warm-up epochs of 300, mask 0.75, raw-pixel target,
# 224 px. The paper's datasets are small (CIFAR-10/100, Tiny-ImageNet, SVHN, APTOS, COVID): point
# data.dataset.root at one as an ImageFolder tree (train/<class>/*). Views: shorter side to 256
# (Resize(224 / 0.875), bicubic) shared; the first view its top-left 224; the second a random 224
# crop, flip, ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2; ImageNet statistics.
_processes = 1
_train_images = 50000  # CIFAR's training split; set to your folder's image count
_iters_per_epoch = _train_images // (64 * _processes)
model = dict(type="sdmae", size="base", img_size=224, patch_size=16, mask_ratio=0.75)
data = dict(
    dataset=dict(type="image_folder", root="/data/cifar10/train", channels=3),
    transform=dict(
        type="views",
        shared=[dict(type="resize", size=256, interpolation="bicubic")],
        views=dict(first=[dict(type="crop", size=224, position="top_left")],
                   second=[dict(type="crop", size=224, position="random"), dict(type="hflip"),
                           dict(type="color_jitter", brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8),
                           dict(type="grayscale", p=0.2)])),
    batch_size=64,
    num_workers=10,
)
schedule = dict(max_iters=300 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1e-3, weight_decay=0.05,
                betas=(0.9, 0.95), accumulate=1, clip_grad=None, nonfinite="stop", min_lr=0.0)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
