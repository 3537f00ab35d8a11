# MT-Net synthesis T1 → T2 on BraTS 2020 from the Edge-MAE encoder (set model.pretrained to the
# pre-training checkpoint): encoder on the unmasked T1 slice, coarse (32×32) and fine (64×64)
# branches fused by DSF at the skips of blocks 3, 6, 9, 12, loss 10000·L1 + feature consistency of
# the frozen pre-trained encoder over its 12 blocks. The fine-tuning optimiser, batch and length are
# ours (the note gives the loss, not the recipe): Adam-style, lr 1e-4 at batch 8, 50 epochs.
# Evaluate: `maekit synthesize mtnet_brats_t1_t2 --checkpoint … --out synthesised/`.
_base_ = ["edge_mae_brats.py"]
_subjects = 295
_batch = 8
_epoch = _subjects * 60 // _batch
_edge_mae = {{_base_.model}}
model = dict(_delete_=True, type="mri_mtnet", encoder=_edge_mae, pretrained=None, skip_layers=(0, 3, 6, 9, 12),
             dim=128, num_heads=8, pixel_weight=10000.0, consistency_layers=12, consistency_weight=1.0)
data = dict(_delete_=True,
            dataset=dict(type="mri_paired_slices", cache="/data/BraTS2020-slices", source="t1", target="t2",
                         split="train"),
            batch_size=_batch,
            num_workers=8)
schedule = dict(max_iters=50 * _epoch, warmup_iters=_epoch, blr=1e-4 * 256 / _batch, weight_decay=0.0)
checkpoint_interval = 5 * _epoch
synthesis = dict(dataset=dict(type="mri_paired_slices", cache="/data/BraTS2020-slices", source="t1", target="t2",
                              split="test"))
