# PeCo's mechanism on the digits: beit_demo_digits with the tokenizer trained with a perceptual term
# as well — squared feature distances at blocks 1-4 of a frozen self-supervised encoder, here the
# demo's own MAE run (core's mae_demo_digits; its checkpoint is set by `maekit demo beit`). Not
# PeCo's codebook: a small demonstration of how it is made.
_base_ = ["./beit_demo_digits.py"]
model = dict(type="peco", tokenizer=dict(
    type="peco_vq", perceptual=dict(checkpoint="work_dirs/mae_demo_digits/iter_1000.pth", layout="maekit", size=None,
                    encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=128, depth=4, num_heads=4),
                    weight=1.0)))
