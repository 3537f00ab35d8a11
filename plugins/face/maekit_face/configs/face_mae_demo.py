# Tiny MAE for the face demo (`maekit demo face`): pre-trained on scikit-image's 100 real LFW faces and
# the unlabelled procedural faces of fold 1's training subjects (36 px, random 32 crop + flip; patch 4
# → 64 tokens), then AU detection on the procedural faces (exact AU-like labels: a pipeline check, not
# a BP4D figure) with `maekit au-eval`, clean and occluded. Minutes on 2 CPU cores. The au schedule has no
# layer decay and no drop path: with them this tiny model's pre-trained start fell behind random init (README).
_faces = dict(type="face_procedural", subjects=12, frames=80, size=36, channels=3)
_imagenet = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
_crop = dict(type="face_au_crop", size=32, train=True, **_imagenet)

model = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=3,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, norm_pix_loss=True)
data = dict(
    dataset=dict(type="concat_sources", sources=[
        dict(name="lfw", dataset=dict(type="face_lfw", size=36), transform=_crop),
        dict(name="procedural", dataset=dict(_faces, split="train", fold=1, labelled=False), transform=_crop)]),
    transform=None,
    batch_size=64,
    num_workers=0,
)
schedule = dict(max_iters=1000, warmup_iters=50, blr=5e-3, weight_decay=0.05, betas=(0.9, 0.95))
checkpoint_interval = 500
log_interval = 50
eval_transform = dict(type="face_au_crop", size=32, train=False, **_imagenet)
probe = dict(train=dict(_faces, split="train", fold=1), test=dict(_faces, split="test", fold=1))
au = dict(
    data=dict(dataset=dict(_faces, split="train", fold=1), transform=_crop, batch_size=64, num_workers=0),
    test=dict(_faces, split="test", fold=1),
    eval_transform=dict(type="face_au_crop", size=32, train=False, **_imagenet),
    head=dict(width=64, depth=2, num_heads=4),
    schedule=dict(max_iters=600, warmup_iters=60, blr=4e-3, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=1.0),
    folds=(1,),
    # conditions and train_occlusions: maekit_face.evaluate.DEFAULT_CONDITIONS (clean, patches 25/50/75 %, blocks ¼, ½)
    occlusion_threshold=0.5, node_weight=1.0, edge_weight=1.0, drop_path_rate=0.0, test_batch_size=256,
    # at this size a frozen encoder's latents did not carry the AUs to the head (README): the student's encoder trains
    freeze_encoder=False,
)
