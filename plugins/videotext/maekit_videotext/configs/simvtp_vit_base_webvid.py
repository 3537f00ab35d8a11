# SimVTP ViT-B pre-training on WebVid-2M as the paper (Ma et al. 2022): VideoMAE's video branch (16 frames at
# stride 4, multi-scale crops to 224, no flip, 2x16x16 cubes, tube masking 0.9, decoder 4 x 384, per-cube
# norm-pix target), bert-base-uncased's WordPiece vocabulary and embedding layer, text masked at 0.75 (all
# [MASK]), VTC at temperature 0.05, VTM with random in-batch negatives, unit weights; 200 epochs (40 warm-up),
# batch 1024 (16 x 64 GPUs), AdamW (0.9, 0.95), wd 0.05, blr 1.5e-4 (lr = blr x batch / 256), per-step cosine.
# The paper starts the whole video model from VideoMAE's K400 checkpoint and BERT's embeddings from
# bert-base-uncased; neither can be downloaded here. Point the paths at your WebVid copy and a local
# bert-base-uncased vocab.txt, and give the two weight files as overrides:
#   model.video_checkpoint=<VideoMAE's K400 pre-training checkpoint-1599.pth> (official layout)
#   model.text.bert_checkpoint=<bert-base-uncased's pytorch_model.bin or model.safetensors>
# text_pool="all": the text features average every position, padding included, as the reference does.
_webvid_csv = "data/webvid/results_2M_train.csv"
_webvid_videos = "data/webvid/videos"
_msrvtt = "data/msrvtt"
_clip = dict(sampling="consecutive", num_frames=16, stride=4, pad=True)
model = dict(type="simvtp", size="base", num_frames=16, img_size=224, mask_ratio=0.9, text_pool="all",
             text=dict(vocab_size=30522, max_length=512, vocab_file="data/bert-base-uncased/vocab.txt", mask_prob=0.75))
data = dict(dataset=dict(type="videotext_webvid", csv_file=_webvid_csv, video_dir=_webvid_videos, clip=_clip),
            transform=dict(type="videomae_augment", size=224), batch_size=16, num_workers=10)
_processes, _batch = 64, 1024
_iters_per_epoch = 2_500_000 // _batch  # WebVid-2M: about 2.5M clips; set your copy's count
schedule = dict(max_iters=200 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, blr=1.5e-4,
                weight_decay=0.05, betas=(0.9, 0.95), min_lr=1e-5 * _batch / 256, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 5 * _iters_per_epoch
log_interval = 50
seed = 0
eval_transform = dict(type="video_eval", size=224)
# MSR-VTT retrieval as the paper: fine-tuned on the 9k split with the contrastive loss on whole clips and
# captions, tested on 1k-A (one caption per video). The paper's aim: R@1 53.6, R@5 81.9, R@10 90.7.
# The release's scripts/finetune_msrvtt.sh: 100 epochs, batch 8 x 8 GPUs, lr 3e-4 scaled by batch / 256 as
# VideoMAE's code does, AdamW (0.9, 0.999), wd 0.05 (its 5 warm-up epochs are not reproduced: cosine only).
# Test views as the reference: 3 clips x 3 crops per video, their features averaged.
retrieval = dict(test=dict(type="videotext_msrvtt", root=_msrvtt, split="test_1k_a", clip=_clip, test_clips=3),
                 eval_transform=dict(type="video_eval", size=224, short_side=224, crops=3),
                 train=dict(type="videotext_msrvtt", root=_msrvtt, split="train_9k", clip=_clip), batch_size=16,
                 ks=(1, 5, 10), finetune=dict(iters=100 * 9000 // 64, batch_size=64, lr=3e-4 * 64 / 256, weight_decay=0.05))
