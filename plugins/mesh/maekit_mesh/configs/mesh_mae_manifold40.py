# MeshMAE (Liang et al., ECCV 2022) pre-trained on Manifold40-MAPS-96-3 (or ShapeNet remeshed the
# same way): patches of 64 faces (a base face subdivided 3 times), up to 256 per mesh, 10 features
# per face; encoder 12 × 768 × 12 heads, decoder 6 × 512 × 16 heads, mask ratio 0.5, loss
# MSE(features) + 0.5 · Chamfer-L1(vertices); AdamW lr 1e-4, wd 0.05, batch 32, 100 epochs with
# cosine after 2 warm-up epochs; scaling + free-form deformation. (9,843 training meshes × 10
# remeshed variants in Manifold40-MAPS.) Fine-tuning: classification with majority voting.
_root = "/data/Manifold40-MAPS-96-3"
_cache = None  # or the folder written by `maekit mesh-preprocess /data/Manifold40-MAPS-96-3 --out ...`
_batch = 32
_epoch = 98430 // _batch
_train = dict(type="mesh_folder", root=_root, split="train", layout="maps", max_patches=256, cache=_cache)
_test = dict(type="mesh_folder", root=_root, split="test", layout="maps", max_patches=256, cache=_cache)
model = dict(type="mesh_mae", embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512, decoder_depth=6,
             decoder_num_heads=16, mask_ratio=0.5, weight=0.5)
data = dict(dataset=_train, transform=dict(type="mesh_augment", scale_std=0.1, deform=0.1), batch_size=_batch,
            num_workers=8)
eval_transform = dict(type="mesh_augment", scale_std=0.0, deform=0.0)  # identity: meshes as stored
schedule = dict(max_iters=100 * _epoch, warmup_iters=2 * _epoch, blr=1e-4 * 256 / _batch, weight_decay=0.05,
                betas=(0.9, 0.999), min_lr=1e-6, clip_grad=None, nonfinite="stop")
probe = dict(train=_train, test=_test, pools=("mean", "cls"))
# MeshMAE's classification fine-tuning: batch 32, lr 1e-4 (AdamW, wd 0.05), 100 epochs, drop path 0.1,
# scaling augmentation only, max over the patch tokens → Linear(40)
finetune = dict(classifier="mesh_classifier", num_classes=40, drop_path_rate=0.1, label_smoothing=0.0,
                data=dict(dataset=_train, transform=dict(type="mesh_augment", scale_std=0.1), batch_size=32,
                          num_workers=8),
                test=_test,
                schedule=dict(max_iters=100 * _epoch, warmup_iters=2 * _epoch, blr=1e-4 * 256 / 32,
                              weight_decay=0.05, betas=(0.9, 0.999), min_lr=1e-6, layer_decay=1.0))
# part segmentation (HumanBody-NS-256-3: 8 parts; coseg-aliens-MAPS-256-3: 4): per-face labels from
# the .json sub_labels
_seg_root = "/data/HumanBody-NS-256-3"
segmentation = dict(classifier="mesh_segmenter", num_classes=8, drop_path_rate=0.0,
                    data=dict(dataset=dict(type="mesh_segmentation", root=_seg_root, split="train", layout="maps"),
                              transform=dict(type="mesh_augment", scale_std=0.1), batch_size=16, num_workers=8),
                    test=dict(type="mesh_segmentation", root=_seg_root, split="test", layout="maps"),
                    schedule=dict(max_iters=20000, warmup_iters=500, blr=1e-4 * 256 / 16, weight_decay=0.05,
                                  betas=(0.9, 0.999), min_lr=1e-6, layer_decay=1.0))
checkpoint_interval = 10 * _epoch
log_interval = 50
seed = 0
