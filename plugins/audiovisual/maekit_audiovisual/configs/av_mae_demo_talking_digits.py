# Tiny Audiovisual MAE on the demo's talking digits (a scikit-learn digit moving over 32x32 with the
# digit spoken by espeak-ng in the same 1 s .mp4, both streams decoded from the one file): 8-frame
# clips at stride 2 in 2x4x4 cubes (4 x 8 x 8 = 256 tokens), the whole 1 s track as a 96-frame x
# 64-bin log-mel spectrogram in 8x8 patches (12 x 8 = 96 tokens); audio masked at 0.7 (the paper), video
# at 0.75 (at 0.9 only ~2 of a digit's 16 patches per frame stay visible at this size: maekit-video's
# demo measured its probe below random init there); mid fusion (3 blocks per modality + 1 joint),
# one shared decoder, raw-patch targets; encoder 4 x 128, decoder 2 x 64. Minutes on 2 CPU cores.
_train = dict(type="av_demo_talking_digits", split="train")
_test = dict(type="av_demo_talking_digits", split="test")
_half = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # frames in [-1, 1], as the reference
model = dict(type="av_mae", size=None, encoder=dict(embed_dim=128, depth=4, num_heads=4),
             decoder=dict(embed_dim=64, depth=2, num_heads=4), num_frames=8, img_size=32, patch_size=4,
             audio_patch_size=8, audio_frames=96, num_mel_bins=64, audio_mask_ratio=0.7, video_mask_ratio=0.75,
             fusion="mid", joint_depth=1, decoder_strategy="shared")
data = dict(dataset=_train, transform=dict(type="videomae_augment", size=32, scales=(1.0, 0.875), **_half),
            batch_size=32, num_workers=1)  # one process decodes while the other trains
eval_transform = dict(type="video_eval", size=32, **_half)
schedule = dict(max_iters=800, warmup_iters=40, blr=1e-3, weight_decay=0.05, betas=(0.9, 0.95))
checkpoint_interval = 800
log_interval = 50
seed = 0
# maekit av-eval: probe / k-NN (joint, audio alone, video alone) and audio<->video retrieval. Fine-tuning
# (joint, audio alone, video alone) is set up but off in the demo (iters 0): 150 steps, measured on the
# earlier 2 s clips, could not separate pre-trained from random init, and longer runs did not fit the
# demo's minutes. Ask for it with 'maekit av-eval CONFIG --checkpoint FILE --finetune-iters N'.
av_eval = dict(train=_train, test=_test, batch_size=64, ks=(1, 5, 10), knn_k=20,
               finetune=dict(iters=0, batch_size=32, lr=1e-3, weight_decay=0.05, num_classes=10))
