# TTT-MAE on digits (see _ttt_digits.py): a tiny MAE (patch 8 → 16 tokens; encoder 128 wide, 4 blocks;
# decoder 64 wide, 2 blocks; mask 0.75, norm-pix) pre-trained 1000 iterations as core's mae_demo_digits;
# then the ViT probe head (64 wide, 2 blocks) on the frozen encoder's every token (ttt_probe);
# then per held-out image 10 SGD steps (momentum 0.9) on 32 masked copies, encoder + mask token
# adapting, decoder blocks frozen (ttt). The reference's rule sets the rate: lr = 1e-2 × copies / 256
# (5e-3 for its 128 copies), so 1.25e-3 for 32; its 20 steps are halved for the demo's time.
_base_ = ["./_ttt_digits.py"]
model = dict(type="ttt_mae", num_classes=10, head=dict(type="vit", width=64, depth=2, num_heads=4),
             size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8, in_chans=1,
             encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, norm_pix_loss=True)
schedule = dict(max_iters=1000, warmup_iters=50, blr=5e-3, weight_decay=0.05, betas=(0.9, 0.95), min_lr=0.0)
checkpoint_interval = 1000
# the reference's probe recipe (AdamW, wd 0.2, warm-up then cosine) at the demo's scale
ttt_probe = dict(data=dict(dataset=dict(type="digits", split="train", size=32, channels=1),
                           transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
                           batch_size=64, num_workers=0),
                 schedule=dict(max_iters=400, warmup_iters=40, blr=4e-3, weight_decay=0.2, betas=(0.9, 0.999)))
ttt = dict(steps=10, copies=32, lr=1.25e-3, optimizer="sgd", momentum=0.9, weight_decay=0.0, trainable="encoder",
           reset="episodic", samples_per_batch=8, seed=0)
