# MILAN on scikit-learn's digits with a stand-in teacher: no CLIP can be fetched here and a tiny CLIP
# trained on digit captions would leak the labels, so the teacher is the tiny MAE `maekit demo
# distill` trains first (core's mae_demo_digits, 4 x 128): targets = its final-norm output of every
# token, importance = its last block's class-token attention. Student 4 x 64 (half the teacher's
# width), prompting decoder 2 x 64, mask 0.75, the budget of mae_demo_digits (1000 iterations of 64).
_base_ = ["./_digits_demo.py"]
model = dict(type="milan", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=64, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75,
             teacher=dict(kind="mae", encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=128, depth=4, num_heads=4),
                          layout="maekit", checkpoint="work_dirs/mae_demo_digits/iter_1000.pth"))
