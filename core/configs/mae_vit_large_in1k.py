# MAE ViT-L/16: as ViT-B but the large encoder (the paper's main model).
_base_ = ["./mae_vit_base_in1k.py"]

model = dict(size="large")
