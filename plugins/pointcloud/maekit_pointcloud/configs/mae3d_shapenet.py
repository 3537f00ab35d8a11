# MAE3D (Jiang et al.) on its ShapeNet archive (shapenet57448xyzonly.npz, key "data"): 2048 points,
# 32 patches of 64 (absolute coordinates), block masking 0.7 (22 patches), EdgeConv tokens (k 20,
# 1024 wide), encoder and decoder 6 × 1024 (8 heads of 64, MLP 2048), folding completion, loss
# 0.1 · CD(cloud) + CD(centres) summed over the batch; Adam-style (0.9, 0.999) lr 1e-4 at batch 32
# (maekit's blr per 256: 8e-4), weight decay 1e-4, 300 epochs, cosine. Evaluation: DGCNN's
# ModelNet40 HDF5 (1024 points, as MAE3D's classification).
_archive = "/data/MAE3D/shapenet57448xyzonly.npz"
_modelnet_h5 = "/data/modelnet40_ply_hdf5_2048"
_batch = 32
_epoch = 57448 // _batch
model = dict(type="mae3d", num_points=2048, num_groups=32, group_size=64, mask_ratio=0.7, mask_type="block",
             embed_dim=1024, depth=6, num_heads=8, head_dim=64, mlp_dim=2048, decoder_embed_dim=1024,
             decoder_depth=6, decoder_num_heads=8, edgeconv_k=20, cloud_weight=0.1)
data = dict(dataset=dict(type="point_cloud_archive", path=_archive, key="data", min_points=2048),
            transform=dict(type="point_cloud_augment", num_points=2048, scale=(2 / 3, 3 / 2), translate=0.2,
                           shuffle=True),
            batch_size=_batch, num_workers=8)
eval_transform = dict(type="point_cloud_eval_transform", num_points=1024, sampling="first")
schedule = dict(max_iters=300 * _epoch, warmup_iters=0, blr=1e-4 * 256 / _batch, weight_decay=1e-4,
                betas=(0.9, 0.999), min_lr=1e-6, clip_grad=None, nonfinite="stop")
_train = dict(type="point_cloud_h5", root=_modelnet_h5, files="ply_data_train*.h5", min_points=1024)
_test = dict(type="point_cloud_h5", root=_modelnet_h5, files="ply_data_test*.h5", min_points=1024)
probe = dict(train=_train, test=_test, pools=("mean", "cls"))
svm = dict(train=_train, test=_test, c=1.0)
# MAE3D's classification recipe where it applies to keeping the whole encoder: 250 epochs, batch 32,
# label smoothing 0.2; our AdamW lr 5e-4 with layer decay 0.75 (the reference fine-tunes with SGD
# only the patch embedding; see the README)
_ft_epoch = 9840 // 32
finetune = dict(
    classifier="point_classifier", num_classes=40, drop_path_rate=0.1, label_smoothing=0.2,
    data=dict(dataset=_train, transform=dict(type="point_cloud_augment", num_points=1024), batch_size=32,
              num_workers=8),
    test=_test,
    schedule=dict(max_iters=250 * _ft_epoch, warmup_iters=10 * _ft_epoch, blr=5e-4 * 256 / 32, weight_decay=0.05,
                  betas=(0.9, 0.999), min_lr=1e-6, layer_decay=0.75),
)
checkpoint_interval = 20 * _epoch
log_interval = 50
seed = 0
