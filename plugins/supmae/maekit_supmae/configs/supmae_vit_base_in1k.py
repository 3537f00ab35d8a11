# SupMAE ViT-B/16 on ImageNet-1k, the reference's recommended pre-training (PRETRAIN.md of
# enyac-group/supmae): model mae_vit_base_patch16_d1b (decoder 512 wide, 1 block), --global_pool,
# norm-pix loss, mask 0.75, 400 epochs with 20 warm-up, blr 1.5e-4, weight decay 0.05, AdamW
# (0.9, 0.95), batch 256 per GPU × 8 = 2048, classification head 3072-wide MLP with BatchNorm,
# cls_loss_ratio 0.01, temperature 10. No gradient accumulation: the head's BatchNorm needs the
# real batch (the reference warns against --accum_iter). An iteration is one batch per process.
_processes = 8
model = dict(type="supmae", size="base", img_size=224, num_classes=1000, cls_hidden=3072, global_pool=True,
             cls_loss_ratio=0.01, temperature=10.0, mask_ratio=0.75, norm_pix_loss=True,
             decoder_embed_dim=512, decoder_depth=1, decoder_num_heads=16)
data = dict(
    dataset=dict(type="image_folder", root="/data/imagenet/train"),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0), flip=True),
    batch_size=256,
    num_workers=10,
)
_iters_per_epoch = 1281167 // (256 * _processes)  # drop_last, as the reference's loader
schedule = dict(max_iters=400 * _iters_per_epoch, warmup_iters=20 * _iters_per_epoch, blr=1.5e-4, weight_decay=0.05,
                betas=(0.9, 0.95), accumulate=1, clip_grad=None, nonfinite="stop", min_lr=0.0)
checkpoint_interval = 50 * _iters_per_epoch
log_interval = 50
seed = 0
