# Point-MAE (Pang et al., ECCV 2022) on ShapeNet-55 (Point-BERT layout, 41,952 training clouds):
# 1024 points, 64 groups of 32 (re-centred), random masking 0.6, mini-PointNet tokens, encoder
# 12 × 384 × 6 heads (drop path 0.1), decoder 4 blocks, Chamfer-L2 of the masked groups; AdamW
# (0.9, 0.999) lr 1e-3 at batch 128 (maekit's blr is per 256: 2e-3), wd 0.05, 300 epochs, 10 of
# warm-up, cosine to 1e-6. Evaluation: linear SVM and fine-tuning on ModelNet40.
_shapenet = "/data/ShapeNet55-34/ShapeNet-55"
_shapenet_pc = "/data/ShapeNet55-34/shapenet_pc"
_modelnet = "/data/modelnet40_normal_resampled"
_batch = 128
_epoch = 41952 // _batch
model = dict(type="point_mae", num_points=1024, num_groups=64, group_size=32, mask_ratio=0.6, mask_type="random",
             embed_dim=384, depth=12, num_heads=6, decoder_depth=4, decoder_num_heads=6, drop_path_rate=0.1)
data = dict(dataset=dict(type="shapenet55", root=_shapenet, pc_path=_shapenet_pc, split="train", min_points=1024),
            transform=dict(type="point_cloud_augment", num_points=1024, scale=(2 / 3, 3 / 2), translate=0.2),
            batch_size=_batch, num_workers=8)
eval_transform = dict(type="point_cloud_eval_transform", num_points=1024, sampling="fps")
schedule = dict(max_iters=300 * _epoch, warmup_iters=10 * _epoch, blr=1e-3 * 256 / _batch, weight_decay=0.05,
                betas=(0.9, 0.999), min_lr=1e-6, clip_grad=None, nonfinite="stop")
_train = dict(type="modelnet40", root=_modelnet, split="train", min_points=1024)
_test = dict(type="modelnet40", root=_modelnet, split="test", min_points=1024)
probe = dict(train=_train, test=_test, pools=("mean",))
svm = dict(train=_train, test=_test, c=1.0)
# Point-MAE's ModelNet40 fine-tuning: batch 32, AdamW lr 5e-4 wd 0.05, 300 epochs, 10 of warm-up,
# drop path 0.1, no layer decay, scale-and-translate augmentation (9,843 training clouds)
_ft_batch = 32
_ft_epoch = 9843 // _ft_batch
finetune = dict(
    classifier="point_classifier", num_classes=40, drop_path_rate=0.1, label_smoothing=0.0,
    data=dict(dataset=_train, transform=dict(type="point_cloud_augment", num_points=1024), batch_size=_ft_batch,
              num_workers=8),
    test=_test,
    schedule=dict(max_iters=300 * _ft_epoch, warmup_iters=10 * _ft_epoch, blr=5e-4 * 256 / _ft_batch,
                  weight_decay=0.05, betas=(0.9, 0.999), min_lr=1e-6, layer_decay=1.0),
)
checkpoint_interval = 20 * _epoch
log_interval = 50
seed = 0
