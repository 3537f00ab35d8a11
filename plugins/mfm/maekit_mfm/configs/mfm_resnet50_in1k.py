# MFM ResNet-50 pre-training on ImageNet-1k as in the paper: the ViT-B recipe with the CNN
# encoder (head at stride 32) and low-pass probability 0.3.
_base_ = ["./mfm_vit_base_in1k.py"]

model = dict(type="mfm", encoder_name="resnet50", img_size=224, corruption="frequency",
             radius_inner=16, radius_outer=999, sample_ratio=0.3, decoder_depth=0)
# The paper fine-tunes ResNet-50 with the RSB A2/A3 recipes (LAMB, BCE, mixup...), which maekit's
# ViT fine-tuning does not implement; evaluate the encoder with `maekit probe` (mean pool) instead.
finetune = None
