# Tiny MeshMAE on the procedural demo meshes (6 classes of deformed trimesh primitives remeshed to
# 32 patches of 64 faces): encoder 4 × 128, decoder 2 × 64, mask ratio 0.5; minutes on 2 CPU cores.
_base_ = ["mesh_mae_manifold40.py"]
_train = dict(type="mesh_demo_shapes", split="train", per_class=32, base_faces=32)
_test = dict(type="mesh_demo_shapes", split="test", per_class=16, base_faces=32)
model = dict(embed_dim=128, depth=4, num_heads=4, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4)
data = dict(dataset=dict(_delete_=True, **_train), transform=dict(scale_std=0.1, deform=0.1), batch_size=16,
            num_workers=0)
schedule = dict(max_iters=600, warmup_iters=30, blr=1e-3 * 256 / 16, min_lr=0.0)
probe = dict(_delete_=True, train=_train, test=_test, pools=("mean", "cls"))
finetune = dict(num_classes=6, drop_path_rate=0.0,
                data=dict(dataset=dict(_delete_=True, **_train), transform=dict(scale_std=0.1), batch_size=16,
                          num_workers=0),
                test=dict(_delete_=True, **_test),
                schedule=dict(max_iters=150, warmup_iters=15, blr=5e-4 * 256 / 16))
segmentation = None
checkpoint_interval = 600
log_interval = 50
