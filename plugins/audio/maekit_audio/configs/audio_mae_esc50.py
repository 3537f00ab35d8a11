# Audio-MAE on your own files with ESC-50's evaluation: pre-train on any folder of audio
# (data/audio, searched recursively), then fine-tune and test on ESC-50 as distributed (data/ESC-50:
# meta/esc50.csv and audio/; folds 1-4 train, fold 5 tests: one split of the 5-fold protocol).
# 5 s clips -> 512 frames x 128 bins with ESC-50's mean/std (the reference's esc50 settings);
# ViT-B, everything else as audio_mae_audioset2m. Edit the paths.
_base_ = ["audio_mae_audioset2m.py"]
_front_end = dict(stats="esc50", target_length=512, num_mel_bins=128)
_esc50 = "data/ESC-50"
model = dict(target_length=512)
data = dict(dataset=dict(_delete_=True, type="audio_folder", root="data/audio"),
            transform=dict(_delete_=True, type="audio_mae_augment", gain=True, **_front_end), batch_size=64)
eval_transform = dict(_delete_=True, type="audio_fbank", **_front_end)
schedule = dict(max_iters=20000, warmup_iters=1000)
_train = dict(type="esc50", root=_esc50, folds=(1, 2, 3, 4))
_test = dict(type="esc50", root=_esc50, folds=(5,))
frozen_eval = dict(train=dict(_delete_=True, **_train), test=dict(_delete_=True, **_test), k=20)
finetune = dict(
    num_classes=50, classifier_options=dict(multi_label=False, mask_t_prob=0.2, mask_f_prob=0.2, mixup=0.0),
    data=dict(_delete_=True, dataset=_train,
              transform=dict(type="audio_mae_augment", gain=True, freqm=24, timem=96, **_front_end),
              batch_size=32, num_workers=8),
    test=dict(_delete_=True, **_test), eval_transform=dict(_delete_=True, type="audio_fbank", **_front_end),
    schedule=dict(max_iters=60 * 1600 // 32, warmup_iters=4 * 1600 // 32, blr=1e-3))
