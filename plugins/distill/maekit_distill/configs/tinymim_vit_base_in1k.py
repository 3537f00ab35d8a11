# TinyMIM ViT-B/16 from a frozen MAE ViT-L/16 on ImageNet-1k, as the reference's README command
# (OliverRensu/TinyMIM): 300 epochs, 15 warm-up, batch 4096 (128 per GPU x 32 GPUs), blr 1.5e-4
# (lr = blr x 4096 / 256), AdamW (0.9, 0.95), wd 0.05; one RandomResizedCrop (0.2-1, bicubic) and
# flip, ColorJitter 0.4 on the student's view only; relations (q-k and v-v) of teacher block 18 vs
# the student's last block, read in the teacher's 16 heads; drop path 0.1 on the other blocks.
# The teacher is the MAE release's mae_pretrain_vit_large.pth (official layout).
_processes, _per_process = 32, 128
_iters_per_epoch = 1281167 // (_processes * _per_process)
model = dict(type="tinymim", size="base", img_size=224, teacher_block=18, drop_path=0.1,
             teacher=dict(size="large", layout="official", checkpoint="checkpoints/mae_pretrain_vit_large.pth"))
data = dict(
    dataset=dict(type="image_folder", root="/data/imagenet/train"),
    transform=dict(type="tinymim_views", size=224, scale=(0.2, 1.0), flip=True, jitter=(0.4, 0.4, 0.4)),
    batch_size=_per_process,
    num_workers=10,
)
schedule = dict(max_iters=300 * _iters_per_epoch, warmup_iters=15 * _iters_per_epoch, blr=1.5e-4, weight_decay=0.05,
                betas=(0.9, 0.95), iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
# the student's last block runs only up to its attention relations (as the reference, which sets it too)
find_unused_parameters = True
