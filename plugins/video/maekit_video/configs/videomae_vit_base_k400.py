# VideoMAE ViT-B pre-training on Kinetics-400 as the paper (Tong et al. 2022): 16 frames at stride 4,
# multi-scale corner crops to 224 (no flip), tube masking 0.9, decoder 384 wide x 4, norm-pix target
# per cube and channel; 1600 epochs (800 in the ablations), 40 warm-up, batch 2048, AdamW (0.9, 0.95),
# wd 0.05, blr 1.5e-4 (lr = blr x batch / 256), per-step cosine to 1e-5 x batch / 256.
# Point the lists at VideoMAE's train.csv / val.csv ("path label", one space, no header).
_train_list = "data/k400/train.csv"
_val_list = "data/k400/val.csv"
_clip = dict(sampling="consecutive", num_frames=16, stride=4, pad=True)  # short videos repeat their last frame
model = dict(type="videomae", size="base", num_frames=16, img_size=224, mask_ratio=0.9, masking="tube")
data = dict(dataset=dict(type="video_list", list_file=_train_list, clip=_clip),
            transform=dict(type="videomae_augment", size=224), batch_size=32, num_workers=10)
# One iteration = one batch per process: 64 processes x 32 clips = 2048 (or accumulate).
_processes, _batch = 64, 2048
_iters_per_epoch = 240436 // _batch
schedule = dict(max_iters=1600 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1.5e-4,
                weight_decay=0.05, betas=(0.9, 0.95), min_lr=1e-5 * _batch / 256, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
eval_transform = dict(type="video_eval", size=224)
frozen_eval = dict(train=dict(type="video_list", list_file=_train_list, clip=_clip, train=False),
                   test=dict(type="video_list", list_file=_val_list, clip=_clip, train=False), k=20)
# Fine-tuning as VideoMAE's K400 recipe: 75 epochs (5 warm-up), batch 512 (x 2 repeated augmentations),
# blr 5e-4 (the reference scales by batch / 256 too), layer decay 0.75, drop path 0.1, smoothing 0.1;
# test: 5 clips x 3 crops (short side 224), softmax averaged. RandAugment and mixup/cutmix are not
# applied here (README: deliberate differences).
_ft_batch = 512
finetune = dict(
    num_classes=400, classifier="video_classifier", drop_path_rate=0.1, label_smoothing=0.1,
    data=dict(dataset=dict(type="video_list", list_file=_train_list, clip=_clip),
              transform=dict(type="video_resized_crop", size=224, scale=(0.08, 1.0), short_side=256, repeats=2),
              batch_size=8, num_workers=10),
    test=dict(type="video_list", list_file=_val_list, clip=_clip, train=False, test_clips=5),
    eval_transform=dict(type="video_eval", size=224, short_side=224, crops=3), test_batch_size=2,
    schedule=dict(max_iters=75 * (240436 // _ft_batch), warmup_iters=5 * (240436 // _ft_batch), blr=5e-4,
                  weight_decay=0.05, betas=(0.9, 0.999), min_lr=1e-6 * _ft_batch / 256, layer_decay=0.75))
