# Tiny SimVTP on the demo's captioned moving digits (scikit-learn digits moving over 32x32, written as H.264
# .mp4, two templated captions per clip naming the digit and the direction; read through the caption-CSV
# loader). Video branch as maekit-video's VideoMAE demo: 8-frame clips, 2x4x4 cubes (4 x 8 x 8 = 256
# tokens), tube masking 0.75 (at 0.9 only ~2 of a digit's 16 patches per frame stay visible here), encoder
# 4 x 128, decoder 2 x 64. Text: a WordPiece vocabulary learned from the training captions (at most 256
# tokens), captions cut at 24 tokens, masked at 0.75 as SimVTP. Retrieval: three held-out galleries of 40
# clips (one per digit and direction), zero-shot and after a short contrastive fine-tuning.
_clip = dict(sampling="consecutive", num_frames=8, stride=1)
_train = dict(type="videotext_demo_moving_digits", split="train", clip=_clip)
_galleries = [dict(type="videotext_demo_moving_digits", split=f"test_{g}", clip=_clip) for g in range(3)]
model = dict(type="simvtp", size=None, encoder=dict(embed_dim=128, depth=4, num_heads=4), num_frames=8, img_size=32,
             patch_size=4, tubelet_size=2, mask_ratio=0.75, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4,
             text=dict(vocab_size=256, max_length=24, mask_prob=0.75))
data = dict(dataset=_train, transform=dict(type="videomae_augment", size=32, scales=(1.0, 0.875)),
            batch_size=32, num_workers=1)  # one process decodes while the other trains
eval_transform = dict(type="video_eval", size=32)
schedule = dict(max_iters=1000, warmup_iters=50, blr=3e-3, weight_decay=0.05, betas=(0.9, 0.95))
checkpoint_interval = 1000
log_interval = 50
seed = 0
retrieval = dict(test=_galleries, train=_train, batch_size=40,
                 ks=(1, 5, 10), finetune=dict(iters=300, batch_size=32, lr=5e-4, weight_decay=0.05))
