"""The maekit hooks of maekit-mri. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "edge_mae", "maekit_mri.edge:edge_mae"),
    ("model", "mri_mtnet", "maekit_mri.mtnet:mtnet"),
    ("model", "mri_mim3d", "maekit_mri.mim3d:mim3d"),
    ("decoder", "edge_mae_decoder", "maekit_mri.edge:EdgeMAEDecoder"),
    ("target", "edge_mae_pixels_and_edges", "maekit_mri.edge:PixelsAndEdges"),
    ("loss", "edge_mae_loss", "maekit_mri.edge:EdgeMAELoss"),
    ("patchifier", "mri_volume_patches", "maekit_mri.mim3d:VolumePatchifier"),
    ("transform", "mri_augment", "maekit_mri.data:MRIAugment"),
    ("dataset", "mri_slices", "maekit_mri.data:MRISlices"),
    ("dataset", "mri_paired_slices", "maekit_mri.data:MRIPairs"),
    ("dataset", "mri_volumes", "maekit_mri.mim3d:MRIVolumes"),
    ("dataset", "mri_demo_slices", "maekit_mri.data:DemoVolumeSlices"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"mri": "maekit_mri.demo:run_mri_demo"},
    commands=["maekit_mri.cli:mri_preprocess", "maekit_mri.cli:synthesize"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"synthesis": ["dataset"]}
