# Tiny MAE3D on the procedural demo shapes (512 points): 8 patches of 64 (absolute coordinates),
# block masking 0.7 (5 of 8), EdgeConv tokens (k 16, 128 wide), encoder and decoder 2 × 128 (4
# heads of 32, MLP 256), folding completion (the reference's 1024-wide centre MLP and 512-wide folding
# MLP kept). About 2–4 s a step on 2 CPU cores (EdgeConv and folding cost more than Point-MAE's
# tokens): ~25 minutes for the 600 steps; `maekit demo pointcloud` uses Point-MAE.
_base_ = ["mae3d_shapenet.py"]
_train = dict(type="point_cloud_demo_shapes", split="train", per_class=48, num_points=512)
_test = dict(type="point_cloud_demo_shapes", split="test", per_class=24, num_points=512)
model = dict(num_points=512, num_groups=8, group_size=64, embed_dim=128, depth=2, num_heads=4, head_dim=32,
             mlp_dim=256, decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4, edgeconv_k=16)
data = dict(dataset=dict(_delete_=True, **_train), transform=dict(num_points=512), batch_size=32, num_workers=0)
eval_transform = dict(num_points=512, sampling="first")
schedule = dict(max_iters=600, warmup_iters=30, blr=1e-3 * 256 / 32, weight_decay=1e-4, min_lr=0.0)
probe = dict(_delete_=True, train=_train, test=_test, pools=("mean", "cls"))
svm = dict(_delete_=True, train=_train, test=_test, c=1.0)
finetune = dict(num_classes=8, drop_path_rate=0.0, label_smoothing=0.2,
                data=dict(dataset=dict(_delete_=True, **_train), transform=dict(num_points=512), batch_size=32,
                          num_workers=0),
                test=dict(_delete_=True, **_test),
                schedule=dict(max_iters=150, warmup_iters=15, blr=5e-4 * 256 / 32, layer_decay=0.75))
checkpoint_interval = 600
log_interval = 50
