"""Core's own components, registered like any plugin's (lazily, so listing imports no torch)."""
from __future__ import annotations

from maekit.hookspecs import hookimpl

CORE_COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "mae", "maekit.methods.mae:mae"),
    ("model", "masked_autoencoder", "maekit.model:MaskedAutoencoder"),
    ("model", "vit_classifier", "maekit.finetune:vit_classifier"),
    ("patchifier", "image_patches", "maekit.components.patchify:ImagePatchifier"),
    ("masker", "random_mask", "maekit.components.masking:RandomMasker"),
    ("masker", "block_mask", "maekit.components.masking:BlockMasker"),
    ("masker", "given_mask", "maekit.components.masking:GivenMasker"),
    ("encoder", "vit_encoder", "maekit.components.encoder:ViTEncoder"),
    ("encoder", "transformer_encoder", "maekit.components.encoder:TransformerEncoder"),
    ("decoder", "mae_decoder", "maekit.components.decoder:MAEDecoder"),
    ("decoder", "transformer_decoder", "maekit.components.decoder:TransformerDecoder"),
    ("target", "pixels", "maekit.components.targets:PixelTarget"),
    ("target", "norm_pixels", "maekit.components.targets:NormPixelTarget"),
    ("loss", "masked_mse", "maekit.components.losses:MaskedMSELoss"),
    ("loss", "masked_l1", "maekit.components.losses:MaskedL1Loss"),
    ("dataset", "image_folder", "maekit.data.images:ImageFolderDataset"),
    ("dataset", "image_arrays", "maekit.data.images:ArrayDataset"),
    ("dataset", "digits", "maekit.data.bundled:DigitsDataset"),
    ("dataset", "image_tiles", "maekit.data.bundled:ImageTilesDataset"),
    ("dataset", "augmented_view", "maekit.data.views:AugmentedView"),
    ("transform", "mae_augment", "maekit.data.views:MAEAugment"),
    ("transform", "eval_transform", "maekit.data.views:EvalTransform"),
]


@hookimpl
def maekit_register(registry) -> None:
    registry.register_all(CORE_COMPONENTS)


@hookimpl
def maekit_config_dirs() -> list:
    from maekit.configs import CONFIG_DIR

    return [CONFIG_DIR]


@hookimpl
def maekit_sample_data() -> dict:
    from maekit import samples  # imported on demand: it needs torch

    return {f"image:{name}": (lambda name=name: samples.sample_image(name)) for name in samples.SAMPLE_IMAGES}


@hookimpl
def maekit_demos() -> dict:
    return {"mae": "mae_demo_digits"}
