# Tiny MVD on the demo's moving digits, distilling from two teachers `maekit demo mvd` trains first
# (their checkpoints are filled in by the demo; point them at your own runs to use the config alone):
# an image MAE on digit images (mvd_demo_image_teacher) and a VideoMAE on the clips
# (videomae_demo_moving_digits). Student as the VideoMAE demo's (8 frames, 2x4x4 cubes, 4 x 128, tube
# 0.75 as that demo), two feature decoders 128 wide x 2, SmoothL1 1:1; the same 1200 iterations.
_base_ = ["./videomae_demo_moving_digits.py"]
_width = dict(embed_dim=128, depth=4, num_heads=4)
model = dict(_delete_=True, type="mvd", size=None, encoder=_width, num_frames=8, img_size=32, patch_size=4,
             tubelet_size=2, mask_ratio=0.75, decoder_depth=2,
             image_teacher=dict(encoder_name="vit_tiny_patch16_224", encoder=_width, layout="maekit",
                                checkpoint="work_dirs/mvd_demo_image_teacher/iter_1000.pth"),
             video_teacher=dict(size=None, encoder=_width, layout="maekit",
                                checkpoint="work_dirs/videomae_demo_moving_digits/iter_1200.pth"))
finetune = None
