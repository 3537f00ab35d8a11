# Tiny MAViL stage 2: a fresh student of the stage-1 architecture predicts, at its masked tokens,
# the frozen stage-1 model's fused features of the whole clip (LayerNorm-normalised per token), with
# the same contrastive terms. The teacher's checkpoint is set on the command line or by the demo:
#   --cfg-options model.teacher.checkpoint=work_dirs/mavil_demo_talking_digits/iter_800.pth
_base_ = ["mavil_demo_talking_digits.py"]
_stage1 = dict(type="mavil", size=None, encoder=dict(embed_dim=128, depth=4, num_heads=4),
             decoder=dict(embed_dim=64, depth=2, num_heads=4), num_frames=8, img_size=32, patch_size=4,
             audio_patch_size=8, audio_frames=96, num_mel_bins=64, mask_ratio=0.75, fusion="mid", joint_depth=1,
             views=2, temperature=0.1, weights=dict(inter=1.0, intra_audio=0.1, intra_video=0.1),
             projector=dict(hidden_dim=256, out_dim=128))
model = dict(teacher=dict(model=_stage1, checkpoint=None), target_norm="layernorm")
