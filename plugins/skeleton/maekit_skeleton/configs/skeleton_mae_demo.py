# Tiny SkeletonMAE on the procedural demo motions (6 actions, 10 performers, cross-subject split,
# written as .skeleton files and parsed back): 32-frame clips in 4-frame segments (8 × 25 tokens
# per body), joint ∪ segment masking (90 % of the tokens), encoder 4 × 64; a few minutes on 2 CPU cores.
_base_ = ["skeleton_mae_ntu60_xsub.py"]
_train = dict(type="skeleton_demo_motions", split="train")
_test = dict(type="skeleton_demo_motions", split="test")
model = dict(num_frames=32, embed_dim=64, depth=4, num_heads=4, decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4)
data = dict(dataset=dict(_delete_=True, **_train),
            transform=dict(num_frames=32, min_length=16),
            batch_size=32, num_workers=0)
eval_transform = dict(num_frames=32)
schedule = dict(max_iters=600, warmup_iters=30, blr=1e-3 * 256 / 32, min_lr=0.0)
probe = dict(train=_train, test=_test, pools=("mean",))
linear_eval = dict(train=_train, test=_test, num_classes=9, epochs=100, batch_size=128, lr=0.1)
finetune = dict(num_classes=9, drop_path_rate=0.1, label_smoothing=0.0,
                data=dict(dataset=dict(_delete_=True, **_train), transform=dict(num_frames=32, min_length=16),
                          batch_size=16, num_workers=0),
                test=dict(_delete_=True, **_test),
                schedule=dict(max_iters=200, warmup_iters=20, blr=5e-4 * 256 / 16))
checkpoint_interval = 600
log_interval = 50
