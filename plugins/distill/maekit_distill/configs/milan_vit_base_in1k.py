# MILAN ViT-B/16 on ImageNet-1k, as the reference's PRETRAIN.sh (zejiangh/MILAN; --use_clip
# --change_decoder --attn_mask): 400 epochs, 40 warm-up, batch 4096 (256 per GPU x 8 GPUs x 2
# accumulated), blr 1.5e-4 (lr = blr x 4096 / 256), AdamW (0.9, 0.95), wd 0.05; mask 0.75 with
# CLIP's attention keeping the salient patches, prompting decoder 8 x 512 x 16 heads, targets = OpenAI
# CLIP ViT-B/16's ln_post(all tokens) @ proj (512), loss 2 - 2 cos over every token. The teacher file
# is open_clip's state dict of ViT-B-16-quickgelu with pretrained="openai" (OpenAI's TorchScript
# ViT-B-16.pt is refused: save the state dict once where it can be fetched).
_processes, _per_process, _accumulate = 8, 256, 2
_iters_per_epoch = 1281167 // (_processes * _per_process)
model = dict(type="milan", size="base", img_size=224, mask_ratio=0.75, decoder_embed_dim=512, decoder_depth=8,
             decoder_num_heads=16,
             teacher=dict(kind="clip", model_name="ViT-B-16-quickgelu", checkpoint="checkpoints/clip_vit_b16_openai.safetensors"))
data = dict(
    dataset=dict(type="image_folder", root="/data/imagenet/train"),
    transform=dict(type="mae_augment", size=224, scale=(0.2, 1.0), flip=True),
    batch_size=_per_process,
    num_workers=10,
)
schedule = dict(max_iters=400 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1.5e-4, weight_decay=0.05,
                betas=(0.9, 0.95), accumulate=_accumulate, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
log_interval = 50
seed = 0
