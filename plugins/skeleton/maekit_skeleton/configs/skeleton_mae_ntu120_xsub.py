# SkeletonMAE on NTU RGB+D 120, cross-subject: the NTU-60 recipe with MAMP's 5 decoder blocks and
# 120 classes (63,026 training clips). `maekit skeleton-preprocess nturgb+d_skeletons_all
#   --out /data/ntu/NTU120_XSub.npz --benchmark xsub --subset ntu120 --ignore-list ...`
_base_ = ["skeleton_mae_ntu60_xsub.py"]
_npz = "/data/ntu/NTU120_XSub.npz"
_epoch = 63026 // 128
model = dict(decoder_depth=5)
data = dict(dataset=dict(path=_npz))
schedule = dict(max_iters=400 * _epoch, warmup_iters=20 * _epoch)
linear_eval = dict(train=dict(path=_npz), test=dict(path=_npz), num_classes=120)
finetune = dict(num_classes=120, data=dict(dataset=dict(path=_npz)), test=dict(path=_npz),
                schedule=dict(max_iters=100 * (63026 // 48), warmup_iters=5 * (63026 // 48)))
checkpoint_interval = 20 * _epoch
