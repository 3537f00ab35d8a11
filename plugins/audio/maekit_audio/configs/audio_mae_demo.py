# Tiny Audio-MAE on the demo's spoken digits (espeak-ng speech made on the machine, Speech Commands
# layout, read back through the real loader): 1.28 s -> 128 frames x 64 mel bins, 8 x 8 patches
# (16 x 8 = 128 tokens), masking 0.8, the local decoder (4 shifted-window blocks), encoder 4 x 128;
# a few minutes on 2 CPU cores. The demo's figures are in the README.
_base_ = ["audio_mae_audioset2m.py"]
_front_end = dict(stats="speechcommands", target_length=128, num_mel_bins=64)
_train = dict(type="audio_demo_spoken_digits", split="train")
_test = dict(type="audio_demo_spoken_digits", split="test")
model = dict(size=None, encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=128, depth=4, num_heads=4),
             target_length=128, num_mel_bins=64, patch_size=8, decoder_embed_dim=128, decoder_depth=4,
             decoder_num_heads=4)
data = dict(dataset=dict(_delete_=True, **_train),
            transform=dict(_delete_=True, type="audio_mae_augment", gain=True, **_front_end),
            batch_size=32, num_workers=0)
eval_transform = dict(_delete_=True, type="audio_fbank", **_front_end)
schedule = dict(max_iters=1500, warmup_iters=100, blr=1.5e-4 * 4, weight_decay=0.05)
probe = dict(train=_train, test=_test, pools=("mean", "cls"))
frozen_eval = dict(train=dict(_delete_=True, **_train), test=dict(_delete_=True, **_test), k=20)
finetune = dict(
    num_classes=10, classifier_options=dict(multi_label=False, mask_t_prob=0.2, mask_f_prob=0.2, mixup=0.0),
    data=dict(_delete_=True, dataset=_train,
              transform=dict(type="audio_mae_augment", gain=True, freqm=8, timem=16, **_front_end),
              batch_size=32, num_workers=0),
    test=dict(_delete_=True, **_test), eval_transform=dict(_delete_=True, type="audio_fbank", **_front_end),
    schedule=dict(_delete_=True, max_iters=300, warmup_iters=30, blr=1e-3, layer_decay=0.75))
checkpoint_interval = 1500
log_interval = 50
