# Tiny VideoMAE on the demo's moving digits (scikit-learn digits moving over 32x32 for 16 frames, written
# as H.264 .mp4 by the demo and read back through the video-list loader): 8-frame clips at stride 1,
# 2x4x4 cubes (4 x 8 x 8 = 256 tokens), tube masking 0.75 (the paper's ratio for its smallest set,
# UCF101: at 0.9 only ~2 of a digit's 16 patches per frame stay visible here and the demo's probe fell
# below random init), encoder 4 x 128, decoder 2 x 64; minutes on 2 CPU cores. Figures in the README.
_train = dict(type="video_demo_moving_digits", split="train")
_test = dict(type="video_demo_moving_digits", split="test")
_probe_train = dict(type="video_demo_moving_digits", split="train", train=False)  # centred clips: deterministic
model = dict(type="videomae", size=None, encoder=dict(embed_dim=128, depth=4, num_heads=4), num_frames=8, img_size=32,
             patch_size=4, tubelet_size=2, mask_ratio=0.75, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4)
data = dict(dataset=_train, transform=dict(type="videomae_augment", size=32, scales=(1.0, 0.875)),
            batch_size=32, num_workers=1)  # one process decodes while the other trains
eval_transform = dict(type="video_eval", size=32)
schedule = dict(max_iters=1200, warmup_iters=60, blr=1e-3, weight_decay=0.05, betas=(0.9, 0.95))
checkpoint_interval = 1200
log_interval = 50
seed = 0
probe = dict(train=_probe_train, test=_test, pools=("mean",))
frozen_eval = dict(train=_probe_train, test=_test, k=20)
# Fine-tuning (VideoMAE's protocol, the paper's evaluation), short: 400 iterations of 32 clips.
finetune = dict(
    num_classes=40, classifier="video_classifier", drop_path_rate=0.1, label_smoothing=0.1,
    data=dict(dataset=_train, transform=dict(type="videomae_augment", size=32, scales=(1.0, 0.875)),
              batch_size=32, num_workers=1),
    test=_test, test_batch_size=64, eval_transform=dict(type="video_eval", size=32, crops=1),
    schedule=dict(max_iters=400, warmup_iters=40, blr=4e-3, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.75))
