# TTT (Sun et al.) on digits (see _ttt_digits.py): a GroupNorm ResNet-8 (16/32/64 channels, 8 groups),
# Y-split after stage 2, trained jointly on the classes and on all four rotations of every image
# (800 iterations of 32 images, AdamW + cosine: core's engine; the paper's CIFAR run is SGD 0.1 for
# 150 epochs);
# then per held-out image 10 SGD steps (lr 1e-3, no momentum: the reference's) on 32 randomly
# cropped (4-pixel padding; no flips: digits are not mirror-symmetric) and rotated copies, trunk +
# rotation head adapting.
_base_ = ["./_ttt_digits.py"]
model = dict(type="ttt_rotation", num_classes=10, in_chans=1, depth=8, width=1, groups=8, crop_padding=4, flip=False)
data = dict(transform=dict(type="mae_augment", size=32, scale=(0.6, 1.0), flip=False), batch_size=32)
schedule = dict(max_iters=800, warmup_iters=50, blr=4e-3, weight_decay=0.05, betas=(0.9, 0.999), min_lr=0.0)
checkpoint_interval = 800
ttt = dict(steps=10, copies=32, lr=1e-3, optimizer="sgd", momentum=0.0, weight_decay=0.0, trainable="shared_and_rotation",
           reset="episodic", samples_per_batch=8, seed=0)
