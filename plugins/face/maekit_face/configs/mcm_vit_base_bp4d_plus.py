# MCM pre-training on BP4D+ (paper: ViT on the fused R, G, B, depth, thermal image; 2 of 5 channels
# dropped; two decoders), then RGB-only AU fine-tuning on BP4D with `maekit au-eval` (the `au`
# section of au_mae_vit_base_bp4d). No code was released: channel subsets, decoder sizes, loss mask
# and the schedule are ours (README). Depth and thermal statistics: set them from your data.
_base_ = ["au_mae_vit_base_bp4d.py"]
_stats = dict(mean=[0.485, 0.456, 0.406, 0.5, 0.5], std=[0.229, 0.224, 0.225, 0.25, 0.25])
model = dict(_delete_=True, type="mcm", size="base", img_size=224, channels=5, keep=3, mask_ratio=0.75,
             decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16)
data = dict(dataset=dict(type="face_bp4d_plus", manifest="data/BP4D+/manifest.csv", size=256),
            transform=dict(type="face_au_crop", size=224, train=True, **_stats), batch_size=256, num_workers=8)
eval_transform = dict(type="face_au_crop", size=224, train=False, **_stats)
schedule = dict(max_iters=100000, warmup_iters=5000, blr=1.5e-4, weight_decay=0.05, betas=(0.9, 0.95))
checkpoint_interval = 5000
log_interval = 50
