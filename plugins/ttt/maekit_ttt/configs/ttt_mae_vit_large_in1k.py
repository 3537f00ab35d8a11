# TTT-MAE as the reference (yossigandelsman/test_time_training_mae, README's ImageNet-C run):
# - model: the official MAE ViT-L/16 with its decoder (512 wide, 8 blocks); set model.checkpoint to
#   its full pre-training file (mae_pretrain_vit_large_full.pth, official layout; the decoder is
#   needed), or to [that file, the released probe file] to skip the probe stage; MAE pre-training
#   itself is core's mae_vit_large_in1k;
# - ttt_probe: the ViT probe (768 wide, 12 blocks, 12 heads) on every token of the frozen encoder,
#   AdamW (0.9, 0.999), wd 0.2, blr 1e-3 at an effective batch 1024 (32 × accumulate 4 × 8 GPUs:
#   here 128 × 8 processes), 20 epochs with 5 warm-up, cosine to 1e-6, RandomResizedCrop(224,
#   bicubic, scale 0.08–1) + flip;
# - ttt: per test image 20 SGD steps (momentum 0.9, no weight decay) at lr 1e-2 × 128 / 256 = 5e-3
#   on 128 copies of the centre crop (Resize 256 bicubic + CenterCrop 224), each its own mask
#   (0.75), encoder + cls token + mask token adapting ("encoder"), decoder blocks frozen.
# - ttt_eval: ImageNet-C's 15 corruptions at severity 5; point --corrupted-root at the ImageNet-C
#   tree (<root>/<corruption>/<severity>/<wnid>/*.JPEG).
model = dict(type="ttt_mae", num_classes=1000, head=dict(type="vit", width=768, depth=12, num_heads=12),
             size="large", img_size=224, mask_ratio=0.75, norm_pix_loss=True, decoder_embed_dim=512,
             decoder_depth=8, decoder_num_heads=16, checkpoint=None)
data = dict(dataset=dict(type="image_folder", root="data/imagenet/train", channels=3),
            transform=dict(type="mae_augment", size=224, scale=(0.08, 1.0)), batch_size=128, num_workers=10)
eval_transform = dict(type="resize_center_crop", size=224, resize=256)
_iters_per_epoch = 1281167 // (128 * 8)
ttt_probe = dict(data=data,
                 schedule=dict(max_iters=20 * _iters_per_epoch, warmup_iters=5 * _iters_per_epoch, blr=1e-3,
                               weight_decay=0.2, betas=(0.9, 0.999), min_lr=1e-6))
ttt = dict(steps=20, copies=128, lr=5e-3, optimizer="sgd", momentum=0.9, weight_decay=0.0, betas=(0.9, 0.95),
           trainable="encoder", reset="episodic", samples_per_batch=1, seed=0)
ttt_eval = dict(corrupted_root="data/imagenet-c",
                corruptions=["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                             "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform",
                             "pixelate", "jpeg_compression"],
                severities=[5], clean=False)
seed = 0
log_interval = 50
