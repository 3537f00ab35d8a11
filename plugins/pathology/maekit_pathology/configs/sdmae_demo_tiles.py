# SD-MAE (Luo & Chen) as a setting of the pathology plugin: RGB alone, the plain MAE masking budget
# (16 of 64 visible: ratio 0.75), plus self-distillation of the decoder's rgb output at the
# visible patches into the encoder (weight 1). Same tiles and budget as mmae_demo_tiles.
_base_ = ["mmae_demo_tiles.py"]
model = dict(modalities=[("rgb", 3)], num_visible=16, alphas=(1.0,), self_distillation=1.0)
data = dict(dataset=dict(stains=None))
