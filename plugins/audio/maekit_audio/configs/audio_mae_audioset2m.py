# Audio-MAE ViT-B/16 pre-training on AudioSet-2M as the reference runs it (Huang et al., 2022;
# facebookresearch/AudioMAE submit_pretrain_audioset2M.sh): 10 s clips -> 1024 x 128 Kaldi fbank
# (AudioSet mean/std, divide by 2 std), 16 x 16 patches (64 x 8 = 512 tokens), unstructured masking at
# 0.8, the local decoder (16 Swin-V2 "cr" blocks, 512 wide, 16 heads), norm-pix target; gain
# augmentation only; AdamW (0.9, 0.95), weight decay 1e-4, blr 2e-4 for batch 512 (64 x 8 GPUs),
# 32 epochs with 3 of warm-up, cosine to 0. Paths point at the AudioSet release layout: edit them.
_root = "data/audioset"
_class_labels = f"{_root}/class_labels_indices.csv"
_front_end = dict(stats="audioset", target_length=1024, num_mel_bins=128)
_steps_per_epoch = 2_000_000 // 512

model = dict(type="audio_mae", size="base", target_length=1024, num_mel_bins=128, patch_size=16, mask_ratio=0.8,
             masking="random", decoder_mode="local", decoder_embed_dim=512, decoder_depth=16, decoder_num_heads=16,
             norm_pix_loss=True, pos_layout="reference")
data = dict(dataset=dict(type="audioset_segments", segments=f"{_root}/unbalanced_train_segments.csv",
                         class_labels=_class_labels, audio_dir=f"{_root}/audio/unbalanced_train"),
            transform=dict(type="audio_mae_augment", gain=True, **_front_end),
            batch_size=64, num_workers=10)
eval_transform = dict(type="audio_fbank", **_front_end)
schedule = dict(max_iters=32 * _steps_per_epoch, warmup_iters=3 * _steps_per_epoch, blr=2e-4, weight_decay=1e-4,
                betas=(0.9, 0.95), min_lr=0.0)
frozen_eval = dict(train=dict(type="audioset_segments", segments=f"{_root}/balanced_train_segments.csv",
                              class_labels=_class_labels, audio_dir=f"{_root}/audio/balanced_train"),
                   test=dict(type="audioset_segments", segments=f"{_root}/eval_segments.csv",
                             class_labels=_class_labels, audio_dir=f"{_root}/audio/eval"), k=20)
# AudioSet-2M fine-tuning (submit_ft_mask_bal.sh): 527-way multi-label BCE, mixup 0.5 (fbank-domain
# batch mixup here), SpecAugment freq 48 / time 192, 2-D token masking 0.2 / 0.2, layer decay 0.75, drop
# path 0.1, 100 epochs of 200k clips drawn by the label-balancing weights; test on the eval segments (mAP).
finetune = dict(
    classifier="audio_classifier", num_classes=527, drop_path_rate=0.1,
    classifier_options=dict(multi_label=True, mask_t_prob=0.2, mask_f_prob=0.2, mixup=0.5),
    data=dict(dataset=data["dataset"], sampler="balanced",
              transform=dict(type="audio_mae_augment", gain=True, freqm=48, timem=192, **_front_end),
              batch_size=64, num_workers=10),
    test=frozen_eval["test"], eval_transform=eval_transform,
    schedule=dict(max_iters=100 * 200_000 // 512, warmup_iters=4 * 200_000 // 512, blr=1e-3, weight_decay=0.05,
                  betas=(0.9, 0.999), layer_decay=0.75, min_lr=1e-6))
checkpoint_interval = 5000
log_interval = 100
