# DMAE ViT-B/16 from a frozen MAE ViT-L/16 on ImageNet-1k, as the reference's pretrain.sh
# (UCSC-VLAA/DMAE): 100 epochs, 20 warm-up, batch 4096 (128 per GPU x 8 GPUs x 4 accumulated), blr
# 1.5e-4 (lr = blr x 4096 / 256), AdamW (0.9, 0.95), wd 0.05; mask 0.75, decoder 512 x 8, pixels
# without norm-pix; student block 9 (the script's 0-based 8) through a Linear 768 -> 1024 matched to
# teacher block 18 (0-based 17), L1 between unit vectors, weight 1. The teacher is the MAE release's
# mae_visualize_vit_large.pth (its "model" state dict, official layout; the decoder part is unused).
_processes, _per_process, _accumulate = 8, 128, 4
_batch = _processes * _per_process * _accumulate
_iters_per_epoch = 1281167 // (_processes * _per_process)  # loader iterations (drop_last)
model = dict(type="dmae", size="base", img_size=224, mask_ratio=0.75, decoder_embed_dim=512, decoder_depth=8,
             decoder_num_heads=16, student_tap=9, teacher_tap=18, distill_weight=1.0,
             teacher=dict(size="large", layout="official", checkpoint="checkpoints/mae_visualize_vit_large.pth"))
data = dict(
    dataset=dict(type="image_folder", root="/data/imagenet/train"),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0), flip=True),
    batch_size=_per_process,
    num_workers=10,
)
schedule = dict(max_iters=100 * _iters_per_epoch, warmup_iters=20 * _iters_per_epoch, blr=1.5e-4, weight_decay=0.05,
                betas=(0.9, 0.95), accumulate=_accumulate, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 10 * _iters_per_epoch
log_interval = 50
seed = 0
