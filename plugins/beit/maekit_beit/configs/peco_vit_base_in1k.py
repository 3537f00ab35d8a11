# PeCo ViT-B/16 (Dong et al., AAAI 2023): BEiT's pre-training (beit_vit_base_in1k) on a perceptual
# codebook — a VQ tokenizer with one code per 16-px patch (the ViT's 14×14 grid at 224 px, no
# 112-px view), 8192 codes, trained with a perceptual term on the features of a frozen
# self-supervised ViT-B at blocks 3, 6, 9 and 12 (any maekit encoder checkpoint, e.g. an MAE run).
# Train the tokenizer first — `maekit tokenizer-train peco_vit_base_in1k --out peco_vq.safetensors`
# — then pre-train with --cfg-options model.tokenizer.weights=peco_vq.safetensors
# (without weights, maekit train fits it before the first step; no code was released: see README).
_base_ = ["./beit_vit_base_in1k.py"]
model = dict(type="peco", tokenizer=dict(
    _delete_=True, type="peco_vq", patch_size=16, in_chans=3, vocab_size=8192, code_dim=32, hidden=128, view="inputs",
    fit_samples=16384, fit_steps=100000, fit_batch=64, lr=1e-4,
    perceptual=dict(checkpoint="work_dirs/mae_vit_base_in1k/iter_500400.pth", layout="maekit", size="base",
                    layers=(3, 6, 9, 12), weight=1.0)))
# one view: the tokenizer reads the encoder's own 224-px view
data = dict(transform=dict(_delete_=True, type="mae_augment", size=224, scale=(0.08, 1.0)))
