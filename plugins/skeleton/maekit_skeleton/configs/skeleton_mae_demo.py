# Tiny SkeletonMAE on the procedural demo motions (9 actions, 10 performers, cross-subject split,
# written as .skeleton files and parsed back): 32-frame clips in 4-frame segments (8 × 25 tokens
# per body), joint 0.4 ∪ segment 0.5 masking (70 % of the tokens: at this scale the paper's 90 % leaves
# the encoder too little to learn from — measured in the README), encoder 4 × 64; ~5 minutes on 2 CPU cores.
_base_ = ["skeleton_mae_ntu60_xsub.py"]
_train = dict(type="skeleton_demo_motions", split="train")
_test = dict(type="skeleton_demo_motions", split="test")
model = dict(num_frames=32, embed_dim=64, depth=4, num_heads=4, decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, masker=dict(joint_ratio=0.4, frame_ratio=0.5))
data = dict(dataset=dict(_delete_=True, **_train),
            transform=dict(num_frames=32, min_length=16),
            batch_size=32, num_workers=0)
eval_transform = dict(num_frames=32)
schedule = dict(max_iters=1200, warmup_iters=60, blr=1e-3 * 256 / 32, min_lr=0.0)
probe = dict(train=_train, test=_test, pools=("mean",))
linear_eval = dict(train=dict(_delete_=True, **_train), test=dict(_delete_=True, **_test), num_classes=9, epochs=100,
                   batch_size=128, lr=0.1)
finetune = dict(num_classes=9, drop_path_rate=0.1, label_smoothing=0.0,
                data=dict(dataset=dict(_delete_=True, **_train), transform=dict(num_frames=32, min_length=16),
                          batch_size=16, num_workers=0),
                test=dict(_delete_=True, **_test),
                schedule=dict(max_iters=200, warmup_iters=20, blr=5e-4 * 256 / 16))
checkpoint_interval = 1200
log_interval = 50
