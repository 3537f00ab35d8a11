# The paper's baseline corruptions from the same code family, with its ViT-B settings: choose one
# with --cfg-options model.corruption=super_resolution|deblur|denoise. Each is reconstructed with
# the loss over all frequencies (recover "normal"), as the reference pairs them.
#   super_resolution: bicubic down/up by 8;  deblur: isotropic Gaussian, sigma 5, kernel 7…21;
#   denoise: Gaussian noise, sigma 75 (0–255 units).
_base_ = ["./mfm_vit_base_in1k.py"]

model = dict(corruption="super_resolution", sr_factor=8, blur_sigma=(5.0, 5.0), noise_sigma=(75.0, 75.0))
