# BEiT ViT-B/16 pre-training on ImageNet-1k as the reference (microsoft/unilm beit/README, BEiT-base):
# DALL-E tokenizer on the 112-px Lanczos view, 75 patches masked in blocks, one shared relative
# position table, layer scale 0.1, drop path 0.1; 800 epochs of batch 2048, AdamW (0.9, 0.999),
# lr 1.5e-3, weight decay 0.05, 10 warm-up epochs, cosine to 1e-5, gradient clipping at 3.0.
# Set model.tokenizer.weights to the DALL-E encoder's state dict (convert OpenAI's encoder.pkl once
# with `maekit dalle-convert encoder.pkl --out dall_e_encoder.safetensors`, or MMPretrain's
# converted dalle_encoder.pth) and data.dataset.root to an ImageFolder tree (train/<class>/*.JPEG).
model = dict(type="beit", size="base", img_size=224, patch_size=16, num_masking=75, min_block=16,
             rel_pos="shared", drop_path_rate=0.1,
             tokenizer=dict(type="dall_e", weights="data/dall_e/dall_e_encoder.safetensors"))
data = dict(
    dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
    # BEiT-base's IN-1K runs normalise with the ImageNet statistics (maekit's RGB default)
    transform=dict(type="beit_views", size=224, tokenizer_size=112, scale=(0.08, 1.0), color_jitter=0.4),
    batch_size=128,
    num_workers=10,
)
# An iteration is one batch per process: 16 processes × 128 = 2048. The reference's lr 1.5e-3 is
# absolute at 2048; maekit scales blr by batch / 256: blr = 1.5e-3 × 256 / 2048.
_processes = 16
_iters_per_epoch = 1281167 // (128 * _processes)
schedule = dict(max_iters=800 * _iters_per_epoch, warmup_iters=10 * _iters_per_epoch, blr=1.5e-3 * 256 / 2048,
                weight_decay=0.05, betas=(0.9, 0.999), min_lr=1e-5, clip_grad=3.0)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
