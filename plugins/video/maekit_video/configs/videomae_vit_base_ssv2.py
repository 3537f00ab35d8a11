# VideoMAE ViT-B on Something-Something v2 as the paper: stride 2, 2400 pre-training epochs, the rest
# as the K400 config; fine-tuning on 16 TSN segments without flips (left/right is the label), 30
# epochs, test 16 segments x 3 crops (the reference's second temporal view, offset inside each
# segment, is not sampled: one view per crop).
_base_ = ["./videomae_vit_base_k400.py"]
_root = "data/ssv2"
_clip = dict(sampling="consecutive", num_frames=16, stride=2, pad=True)
_segments = dict(sampling="segments", num_frames=16)
_iters_per_epoch = 168913 // 2048
data = dict(dataset=dict(_delete_=True, type="ssv2", root=_root, split="train", clip=_clip))
schedule = dict(max_iters=2400 * _iters_per_epoch, warmup_iters=40 * _iters_per_epoch, iters_per_epoch=_iters_per_epoch)
checkpoint_interval = 20 * _iters_per_epoch
frozen_eval = dict(train=dict(_delete_=True, type="ssv2", root=_root, split="train", clip=_clip, train=False),
                   test=dict(_delete_=True, type="ssv2", root=_root, split="validation", clip=_clip, train=False))
finetune = dict(
    num_classes=174,
    data=dict(dataset=dict(_delete_=True, type="ssv2", root=_root, split="train", clip=_segments),
              transform=dict(flip=False)),
    test=dict(_delete_=True, type="ssv2", root=_root, split="validation", clip=_segments, train=False),
    schedule=dict(max_iters=30 * (168913 // 512), warmup_iters=5 * (168913 // 512)))
