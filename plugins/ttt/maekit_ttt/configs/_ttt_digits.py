# What the TTT demos share: scikit-learn's digits at 32×32 (one channel), its fixed 80/20 split
# (train 1437, held out 360), and the corrupted held-out set. The digits are 8×8 scans upsampled, so
# smooth that CIFAR-10-C's blur constants (tuned for 32-px photographs) barely touch them (a probe at
# 0.91 clean stays at 0.91 under CIFAR's defocus 5); ImageNet-C's constants at severity 3 cost it
# 20–75 points, so the demo uses those. Test-time training reads no label of the held-out digits.
_digits_train = dict(type="digits", split="train", size=32, channels=1)
_digits_test = dict(type="digits", split="test", size=32, channels=1)
data = dict(dataset=_digits_train, transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False),
            batch_size=64, num_workers=0)
log_interval = 50
seed = 0
probe = dict(train=_digits_train, test=_digits_test)
ttt_eval = dict(test=_digits_test, corruptions=["gaussian_noise", "impulse_noise", "defocus_blur", "motion_blur", "contrast"],
                severities=[3], table="imagenet", clean=True, seed=0)
