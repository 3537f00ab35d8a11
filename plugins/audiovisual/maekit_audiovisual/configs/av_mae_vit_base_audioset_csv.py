# Audiovisual MAE, ViT-B, with the AudioSet pre-training settings of the release (scenic
# projects/av_mae configs/audioset/pretrain.py, there ViT-L): 16 frames at stride 4, 224 crops in
# 2x16x16 cubes, frames in [-1, 1]; 10 s of audio as a 992 x 128 log-mel spectrogram in 16x16 patches
# (62 x 8 tokens; the reference's 1000 frames lose their last 8 to its VALID patching), not
# normalised (mean 0, std 0.5: the front end divides by 2 std); audio masked at 0.7, video at 0.9;
# mid fusion with the last 2 blocks joint; one shared decoder (B: 384 wide, 4 deep, 6 heads); raw
# patches, loss 0.5 audio + 0.5 video; Adam (0.9, 0.95), weight decay 0.05, lr 3e-4 x batch / 256,
# 120 epochs with 4 of warm-up, cosine to 0, batch 512.
# Data: a CSV of your clips with a header "video,label" (each .mp4 holds both streams) or
# "video,audio,label" (parallel files): edit the paths below.
_audio = dict(type="audio_fbank", num_mel_bins=128, target_length=992, mean=0.0, std=0.5)
_train = dict(type="av_clips", csv_file="data/audioset_av/train.csv", audio=_audio,
              clip=dict(sampling="consecutive", num_frames=16, stride=4))
_test = dict(type="av_clips", csv_file="data/audioset_av/eval.csv", audio=_audio,
             clip=dict(sampling="consecutive", num_frames=16, stride=4))
_half = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
model = dict(type="av_mae", size="base", num_frames=16, img_size=224, patch_size=16, audio_frames=992,
             num_mel_bins=128, audio_mask_ratio=0.7, video_mask_ratio=0.9, fusion="mid", joint_depth=2,
             decoder_strategy="shared")
data = dict(dataset=_train, transform=dict(type="videomae_augment", size=224, flip=True, **_half),
            batch_size=64, num_workers=8)
eval_transform = dict(type="video_eval", size=224, short_side=224, **_half)
_iters_per_epoch = 1_900_000 // 512  # AudioSet-2M clips per epoch at a global batch of 512 (8 processes x 64)
schedule = dict(max_iters=120 * _iters_per_epoch, warmup_iters=4 * _iters_per_epoch, blr=3e-4, weight_decay=0.05,
                betas=(0.9, 0.95))
av_eval = dict(train=_train, test=_test, batch_size=64, ks=(1, 5, 10), knn_k=20,
               finetune=dict(iters=0, batch_size=32, lr=1e-4, weight_decay=0.05))
