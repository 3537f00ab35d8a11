# MMAE pre-training (Ikezogwo et al.; MultiMAE-small) on NCT-CRC-HE-100K: ViT-S (384, 12 layers,
# 6 heads), patch 16 at 224 px, RGB + haematoxylin + eosin (Vahadane, cached with
# `maekit pathology-stains /data/NCT-CRC-HE-100K --out /data/NCT-CRC-HE-100K-stains`), 98 visible
# of 588 tokens split by Dirichlet(1, 1, 1) (the reference yaml; its README uses 8, 1, 1),
# decoders 256 wide, depth 2, 8 heads, outputs rgb + norm_rgb. AdamW (0.9, 0.95), wd 0.05,
# lr 1e-4 per 256 samples, 40 warm-up epochs, cosine, 1600 epochs. The 8 tissue classes
# (BACK excluded): 89,434 tiles; the batch of 256 is ours (the note gives the rule, not the size).
_tiles = 89_434
_batch = 256
_epoch = _tiles // _batch
model = dict(type="mmae", img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6, num_visible=98,
             alphas=(1.0, 1.0, 1.0), decoder_dim=256, decoder_depth=2, decoder_num_heads=8)
data = dict(
    dataset=dict(type="pathology_tiles", root="/data/NCT-CRC-HE-100K", exclude=["BACK"], stains="cache",
                 stain_cache="/data/NCT-CRC-HE-100K-stains"),
    transform=dict(type="mmae_augment", size=224, scale=(0.2, 1.0), flip=True, crop="aligned"),
    batch_size=_batch,
    num_workers=8,
)
schedule = dict(max_iters=1600 * _epoch, warmup_iters=40 * _epoch, blr=1e-4, weight_decay=0.05, betas=(0.9, 0.95),
                clip_grad=None, min_lr=0.0, nonfinite="stop")
checkpoint_interval = 20 * _epoch
log_interval = 50
seed = 0
# few-label evaluation of the RGB encoder (`maekit pathology-eval`): CRC-VAL-HE-7K as the test set
probe = dict(train=dict(type="pathology_tiles", root="/data/NCT-CRC-HE-100K", exclude=["BACK"]),
             test=dict(type="pathology_tiles", root="/data/CRC-VAL-HE-7K", exclude=["BACK"]),
             label_counts=(100, 1000))
# few-label fine-tuning (`maekit finetune`): 100 class-balanced labels, fold 0 of 5
finetune = dict(
    num_classes=8,
    drop_path_rate=0.1,
    data=dict(dataset=dict(type="pathology_label_subset", num_labels=100, fold=0, folds=5,
                           dataset=dict(type="pathology_tiles", root="/data/NCT-CRC-HE-100K", exclude=["BACK"])),
              transform=dict(type="mmae_augment", size=224, scale=(0.2, 1.0), flip=True), batch_size=32),
    test=dict(type="pathology_tiles", root="/data/CRC-VAL-HE-7K", exclude=["BACK"]),
    schedule=dict(max_iters=1000, warmup_iters=100, blr=5e-4, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.75),
)
