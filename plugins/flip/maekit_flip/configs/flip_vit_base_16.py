# FLIP ViT-B/16 pre-training (Li et al. 2023; the official JAX configs): mask ratio 0.5, 224 px,
# random resized crop (area 0.5-1) + flip, batch 65,536 (per process: 65,536 / _processes),
# AdamW β2 0.95, weight decay 0.2 (none on biases, norms, cls, positions: maekit's default
# paramwise rule), lr 4e-6 per 256 samples (maekit's blr is per 256: blr = 4e-6, lr 1.024e-3),
# cosine. Length: 32 epochs of LAION-400M (the paper's main runs; its ablations use 6.4) at
# 65,536 per step; the warm-up length is ours (about 5%). CLIP's normalisation statistics.
# Point data.dataset at your pairs (flip_csv / flip_coco_captions / flip_webdataset).
_processes = 256
_total_batch = 65536
model = dict(type="flip", encoder_name="vit_base_patch16_clip_224", img_size=224, mask_ratio=0.5,
             fixed_pos_embed=True, pool="mean", embed_dim=512,
             text=dict(width=512, depth=12, num_heads=8, context_length=77, mask_ratio=0.0))
data = dict(
    dataset=dict(type="flip_webdataset", shards="/data/laion400m/{00000..41407}.tar", on_error="skip"),
    transform=dict(type="mae_augment", size=224, scale=(0.5, 1.0), flip=True,
                   mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)),
    batch_size=_total_batch // _processes,
    num_workers=8,
)
# 32 × 400M / 65,536 ≈ 195,000 steps
schedule = dict(max_iters=195_000, warmup_iters=10_000, blr=4e-6, weight_decay=0.2, betas=(0.9, 0.95),
                clip_grad=None, min_lr=0.0, nonfinite="stop")
checkpoint_interval = 5000
log_interval = 50
seed = 0
zeroshot = dict(dataset=dict(type="image_folder", root="/data/imagenet/val"),
                templates=["a photo of a {}.", "a bad photo of a {}.", "a photo of the large {}.",
                           "a photo of the small {}.", "a rendering of a {}.", "itap of a {}."])
retrieval = dict(dataset=dict(type="flip_coco_captions", annotations="/data/coco/annotations/captions_val2017.json",
                              image_root="/data/coco/val2017"))
