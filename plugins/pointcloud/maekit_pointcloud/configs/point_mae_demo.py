# Tiny Point-MAE on the procedural demo shapes (8 classes of deformed trimesh primitives, 512
# points): 32 groups of 16, random masking 0.6, encoder 4 × 128, decoder 2 blocks; a few minutes on
# 2 CPU cores. Probe, k-NN and the linear SVM compare it with the same encoder untrained.
_base_ = ["point_mae_shapenet55.py"]
_train = dict(type="point_cloud_demo_shapes", split="train", per_class=48, num_points=512)
_test = dict(type="point_cloud_demo_shapes", split="test", per_class=24, num_points=512)
model = dict(num_points=512, num_groups=32, group_size=16, embed_dim=128, depth=4, num_heads=4, decoder_depth=2,
             decoder_num_heads=4, drop_path_rate=0.0)
data = dict(dataset=dict(_delete_=True, **_train), transform=dict(num_points=512), batch_size=32, num_workers=0)
eval_transform = dict(num_points=512)
schedule = dict(max_iters=1600, warmup_iters=80, blr=1e-3 * 256 / 32, min_lr=0.0)
probe = dict(_delete_=True, train=_train, test=_test, pools=("mean",))
svm = dict(_delete_=True, train=_train, test=_test, c=1.0)
finetune = dict(num_classes=8, drop_path_rate=0.0,
                data=dict(dataset=dict(_delete_=True, **_train), transform=dict(num_points=512), batch_size=32,
                          num_workers=0),
                test=dict(_delete_=True, **_test),
                schedule=dict(max_iters=150, warmup_iters=15, blr=5e-4 * 256 / 32))
checkpoint_interval = 1600
log_interval = 50
