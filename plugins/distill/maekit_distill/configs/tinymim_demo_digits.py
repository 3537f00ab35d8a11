# TinyMIM on scikit-learn's digits: a student half the teacher's width (4 blocks x 64; relations in the
# teacher's 4 heads) learns the relations of block 3 of 4 (the paper's 18 of 24) of the tiny
# MAE that `maekit demo distill` trains first (core's mae_demo_digits, 4 x 128), at the budget of
# mae_demo_digits (1000 iterations of 64). No flip for digits (as the MAE demo); jitter 0.4 as the paper.
_base_ = ["./_digits_demo.py"]
model = dict(type="tinymim", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=64, depth=4, num_heads=4), teacher_block=3, drop_path=0.1,
             teacher=dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=128, depth=4, num_heads=4),
                          layout="maekit", checkpoint="work_dirs/mae_demo_digits/iter_1000.pth"))
data = dict(transform=dict(_delete_=True, type="tinymim_views", size=32, scale=(0.35, 1.0), flip=False,
                           jitter=(0.4, 0.4, 0.4)))
# the student's last block runs only up to its attention relations (as the reference, which sets it too)
find_unused_parameters = True
