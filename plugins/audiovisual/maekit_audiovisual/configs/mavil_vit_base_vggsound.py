# MAViL stage 1, ViT-B, on VGGSound (vggsound.csv and the released <ytid>_<start:06d>.mp4 clips, each
# holding both streams). No code was released: the settings the paper leaves open are the values
# below (README: "MAViL: every choice"). Audio as Audio-MAE (1024 x 128 log-mel, AudioSet statistics),
# video 16 frames at stride 4 in 2x16x16 cubes, both masked at 0.8 (the paper), two masked views per
# clip, 10 per-modality + 2 joint blocks, one decoder per modality, per-patch normalised targets,
# contrast at temperature 0.05 with weight 0.01 each (CAV-MAE's values).
_audio = dict(type="audio_mae_augment", gain=True, num_mel_bins=128, target_length=1024, stats="audioset")
_train = dict(type="av_vggsound", csv_file="data/vggsound/vggsound.csv", video_dir="data/vggsound/video",
              split="train", audio=_audio, clip=dict(sampling="consecutive", num_frames=16, stride=4))
_test = dict(type="av_vggsound", csv_file="data/vggsound/vggsound.csv", video_dir="data/vggsound/video",
             split="test", audio=dict(type="audio_fbank", num_mel_bins=128, target_length=1024, stats="audioset"),
             clip=dict(sampling="consecutive", num_frames=16, stride=4))
_half = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
model = dict(type="mavil", size="base", num_frames=16, img_size=224, patch_size=16, audio_frames=1024,
             num_mel_bins=128, mask_ratio=0.8, fusion="mid", joint_depth=2, views=2, temperature=0.05)
data = dict(dataset=_train, transform=dict(type="videomae_augment", size=224, flip=True, **_half),
            batch_size=64, num_workers=8)
eval_transform = dict(type="video_eval", size=224, short_side=224, **_half)
_iters_per_epoch = 183_000 // 512  # VGGSound's training clips at a global batch of 512 (8 processes x 64)
schedule = dict(max_iters=120 * _iters_per_epoch, warmup_iters=4 * _iters_per_epoch, blr=2e-4, weight_decay=0.05,
                betas=(0.9, 0.95))
av_eval = dict(train=_train, test=_test, batch_size=64, ks=(1, 5, 10), knn_k=20,
               finetune=dict(iters=0, batch_size=32, lr=1e-4, weight_decay=0.05))
