# Tiny MAViL stage 1 on the demo's talking digits (see av_mae_demo_talking_digits.py for the data):
# audio and video both masked at 0.75 (the paper's 0.8 leaves too little of a 32x32 digit), two
# masked views per clip, mid fusion (3 + 1 blocks), one decoder per modality, per-patch normalised
# targets; inter-modal contrast weight 1.0 (the plugin's default is CAV-MAE's 0.01; 0.5 on the
# earlier 2 s clips learned the pairing slowly), intra-modal 0.1 each, temperature 0.1, through a
# projector per modality (Linear-BN-ReLU-Linear, 256 -> 128): without it, measured here, the
# mean-pooled features of all clips were so alike that the inter-modal term stayed at chance for
# 550 steps. blr 2e-3. Stage 2 (mavil_stage2_demo_talking_digits.py) distils this model's fused
# features into a fresh student.
_base_ = ["av_mae_demo_talking_digits.py"]
model = dict(_delete_=True, **dict(type="mavil", size=None, encoder=dict(embed_dim=128, depth=4, num_heads=4),
             decoder=dict(embed_dim=64, depth=2, num_heads=4), num_frames=8, img_size=32, patch_size=4,
             audio_patch_size=8, audio_frames=96, num_mel_bins=64, mask_ratio=0.75, fusion="mid", joint_depth=1,
             views=2, temperature=0.1, weights=dict(inter=1.0, intra_audio=0.1, intra_video=0.1),
             projector=dict(hidden_dim=256, out_dim=128)))
schedule = dict(blr=2e-3)
