# MAMP (Mao et al., ICCV 2023) as a SkeletonMAE setting: motion targets (x[t+1] − x[t], per-token
# normalised) and motion-aware masking (ratio 0.9, tau 0.8), otherwise the NTU-60 xsub recipe.
_base_ = ["skeleton_mae_ntu60_xsub.py"]
model = dict(masker=dict(_delete_=True, type="skeleton_motion_aware_masker", mask_ratio=0.9, tau=0.8),
             target="motion", norm_target=True)
