# A digits classifier (core's demo ViT: 128 wide, 4 blocks, patch 4 on 32×32, MAE's head) trained
# from random init on 10 labelled images per class (a stratified 7 % of the training split), 300
# iterations of batch 32. Without MRA as written; `maekit demo mra` sets model.augmentor to the
# trained mra_mae_demo_digits MAE (mask 0.5 of the patches, the least attended; p 0.5), e.g.
#   maekit train mra_classifier_demo_digits \
#     'model.augmentor=dict(model=dict(type="mae", ...), checkpoint="work/mra_mae/iter_1000.pth")'
_mae = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
            encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
            decoder_num_heads=4, norm_pix_loss=False)
model = dict(type="mra_classifier", model=_mae, num_classes=10, drop_path_rate=0.1)
data = dict(
    dataset=dict(type="digits", split="train", size=32, channels=1, fraction=0.07),
    transform=dict(type="mae_augment", size=32, scale=(0.6, 1.0), flip=False),
    batch_size=32,
    num_workers=0,
)
schedule = dict(max_iters=300, warmup_iters=30, blr=2e-3, weight_decay=0.05, betas=(0.9, 0.999), accumulate=1,
                clip_grad=None, nonfinite="stop", min_lr=0.0)
checkpoint_interval = 300
log_interval = 50
seed = 0
