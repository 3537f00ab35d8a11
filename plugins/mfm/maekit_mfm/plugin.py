"""The maekit hooks of maekit-mfm. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "mfm", "maekit_mfm.model:mfm"),
    ("masker", "mfm_frequency_mask", "maekit_mfm.corruption:FrequencyMasker"),
    ("masker", "mfm_downup_sample", "maekit_mfm.corruption:DownUpSampleCorruption"),
    ("masker", "mfm_gaussian_blur", "maekit_mfm.corruption:GaussianBlurCorruption"),
    ("masker", "mfm_gaussian_noise", "maekit_mfm.corruption:GaussianNoiseCorruption"),
    ("encoder", "mfm_cnn_encoder", "maekit_mfm.networks:CNNEncoder"),
    ("decoder", "mfm_pixel_shuffle_head", "maekit_mfm.networks:PixelShuffleHead"),
    ("target", "mfm_image", "maekit_mfm.loss:ImageTarget"),
    ("loss", "mfm_frequency_loss", "maekit_mfm.loss:FrequencyLoss"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    # the ViT demo by default; `maekit demo mfm --config mfm_demo_resnet` runs the CNN one
    demos={"mfm": "mfm_demo_vit"},
)
