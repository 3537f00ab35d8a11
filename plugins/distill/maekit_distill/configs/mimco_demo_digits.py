# MimCo on scikit-learn's digits with a stand-in teacher: no MoCo v3 ViT can be fetched here, so the
# teacher is the tiny MAE `maekit demo distill` trains first (core's mae_demo_digits, 4 x 128; an MAE,
# not a contrastive model — the demo measures the mechanism, not the paper's teacher). Targets: its
# final-norm output of every token and its cls token. Student 4 x 64 (half the teacher's width),
# decoder 2 x 64 at the teacher's width out, mask 0.75, both temperatures 0.2, the budget of
# mae_demo_digits (1000 iterations of 64).
_base_ = ["./_digits_demo.py"]
model = dict(type="mimco", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
             encoder=dict(embed_dim=64, depth=4, num_heads=4), decoder_embed_dim=64, decoder_depth=2,
             decoder_num_heads=4, mask_ratio=0.75,
             teacher=dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=128, depth=4, num_heads=4),
                          layout="maekit", checkpoint="work_dirs/mae_demo_digits/iter_1000.pth"))
