# AU detection on BP4D from an MAE ViT-B/16 (e.g. the official mae_pretrain_vit_base.pth, given to
# `maekit au-eval --checkpoint`): fine-tuned detector (`--method finetune`, also the clean-face teacher)
# and the occlusion-robust student (`--method occlusion --teacher .../fold{fold}/iter_N.pth`).
# Faces: BP4D frames cropped to 256 (`maekit face-crop`), random 224 crop + flip, centre 224 at test.
# Every schedule and head value below is ours: the papers do not state them (README lists them).
_bp4d = dict(type="face_bp4d", root="data/BP4D", images="data/BP4D/2D_frames", crops="data/BP4D/crops", size=256)
_imagenet = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
model = dict(type="mae", size="base", img_size=224)
eval_transform = dict(type="face_au_crop", size=224, train=False, **_imagenet)
au = dict(
    data=dict(dataset=dict(_bp4d, split="train", fold=1), transform=dict(type="face_au_crop", size=224, train=True, **_imagenet),
              batch_size=64, num_workers=8),
    test=dict(_bp4d, split="test", fold=1),
    eval_transform=dict(type="face_au_crop", size=224, train=False, **_imagenet),
    head=dict(width=512, depth=2, num_heads=8, mapping_depth=2),
    schedule=dict(max_iters=20000, warmup_iters=2000, blr=5e-4, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.65),
    folds=(1, 2, 3),
    # conditions and train_occlusions: maekit_face.evaluate.DEFAULT_CONDITIONS (clean, patches 25/50/75 %, blocks ¼, ½)
    occlusion_threshold=0.5, node_weight=1.0, edge_weight=1.0, drop_path_rate=0.1, test_batch_size=256,
    freeze_encoder=True,  # the method note's reading: the student mines a frozen MAE encoder's latents
)
