"""The maekit hooks of maekit-mesh. Components are registered by dotted path, so listing them
imports neither torch nor trimesh."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "mesh_mae", "maekit_mesh.model:mesh_mae"),
    ("model", "mesh_classifier", "maekit_mesh.evaluate:mesh_classifier"),
    ("model", "mesh_segmenter", "maekit_mesh.evaluate:mesh_segmenter"),
    ("patchifier", "mesh_patches", "maekit_mesh.model:MeshPatchifier"),
    ("masker", "mesh_patch_mask", "maekit_mesh.model:MeshPatchMasker"),
    ("encoder", "mesh_encoder", "maekit_mesh.model:MeshEncoder"),
    ("decoder", "mesh_decoder", "maekit_mesh.model:MeshDecoder"),
    ("target", "mesh_targets", "maekit_mesh.model:MeshTargets"),
    ("loss", "mesh_mae_loss", "maekit_mesh.model:MeshMAELoss"),
    ("transform", "mesh_augment", "maekit_mesh.data:MeshAugment"),
    ("dataset", "mesh_folder", "maekit_mesh.data:MeshFolder"),
    ("dataset", "mesh_segmentation", "maekit_mesh.data:MeshSegmentation"),
    ("dataset", "mesh_demo_shapes", "maekit_mesh.demo_data:DemoMeshes"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"mesh": "maekit_mesh.demo:run_mesh_demo"},
    commands=["maekit_mesh.cli:mesh_preprocess", "maekit_mesh.cli:mesh_eval", "maekit_mesh.cli:mesh_convert"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"segmentation": ["num_classes", "drop_path_rate", "label_smoothing", "classifier", "data", "test",
                             "schedule", "eval_transform"]}
