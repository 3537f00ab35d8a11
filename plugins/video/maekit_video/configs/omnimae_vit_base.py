# OmniMAE ViT-B (Girdhar et al. 2023): one model pre-trained on ImageNet-1k images (each repeated to
# one 2-frame tubelet) and Something-Something v2 clips (16 frames spread over 2.7 s, short side 256
# then a random resized crop to 224, 4 augmented clips per decoded video), every batch from one
# source in a seeded random interleaving (a video batch is batch / 4 videos, 4 clips each); random masking at the paper's 90 % (images) / 95 % (videos);
# norm-pix per patch and channel; decoder 384 x 4, 16 heads; 800 epochs, AdamW (0.9, 0.95), wd 0.05,
# peak lr 1.6e-3 at batch 2048 (blr 2e-4), 5 % warm-up, cosine to 0.
model = dict(type="omnimae", size="base", num_frames=16, img_size=224, image_mask_ratio=0.9, video_mask_ratio=0.95)
data = dict(
    dataset=dict(type="concat_sources", sources=[
        dict(name="in1k", dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
             transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0))),
        dict(name="ssv2", dataset=dict(type="ssv2", root="data/ssv2", split="train",
                                       clip=dict(sampling="window", num_frames=16, seconds=2.7)),
             transform=dict(type="video_resized_crop", size=224, short_side=256, flip=False, repeats=4),
             repeat_factor=0.25),  # 4 clips per video: a quarter of the videos per pass (the reference)
    ]),
    transform=None, sampler="one_source_per_batch", batch_size=32, num_workers=10)
# steps per pass: IN1K batches of 2048 images + a quarter of SSv2 in batches of 512 videos (x 4 clips)
_iters_per_epoch = 1281167 // 2048 + int(168913 // (2048 // 4) * 0.25)
schedule = dict(max_iters=800 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=2e-4, weight_decay=0.05,
                betas=(0.9, 0.95), min_lr=0.0, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
eval_transform = dict(type="video_eval", size=224)
