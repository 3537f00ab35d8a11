# DMAE on scikit-learn's digits: a student half the teacher's width (4 blocks x 64) distilled from the
# tiny MAE that `maekit demo distill` trains first (core's mae_demo_digits, 4 x 128: no MAE-L can be
# fetched here), at the budget of mae_demo_digits (1000 iterations of 64). Block 3 of 4 on both
# sides (the paper's 9 of 12 <-> 18 of 24, three quarters deep); pixels without norm-pix.
_base_ = ["./_digits_demo.py"]
model = dict(type="dmae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=64, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75, student_tap=3, teacher_tap=3,
             teacher=dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=128, depth=4, num_heads=4),
                          layout="maekit", checkpoint="work_dirs/mae_demo_digits/iter_1000.pth"))
