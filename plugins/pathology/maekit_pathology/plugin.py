"""The maekit hooks of maekit-pathology. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "mmae", "maekit_pathology.model:mmae"),
    ("patchifier", "mmae_patchifier", "maekit_pathology.model:MultiModalPatchifier"),
    ("masker", "mmae_dirichlet_masker", "maekit_pathology.model:DirichletBudgetMasker"),
    ("encoder", "mmae_encoder", "maekit_pathology.model:MultiModalEncoder"),
    ("decoder", "mmae_decoders", "maekit_pathology.model:OutputDecoders"),
    ("target", "mmae_targets", "maekit_pathology.model:MultiModalTargets"),
    ("loss", "mmae_loss", "maekit_pathology.model:MultiModalLoss"),
    ("transform", "pathology_stain_separation", "maekit_pathology.stains:StainSeparation"),
    ("transform", "mmae_augment", "maekit_pathology.data:MultiModalAugment"),
    ("dataset", "pathology_tiles", "maekit_pathology.data:PathologyTiles"),
    ("dataset", "pathology_demo_tiles", "maekit_pathology.data:DemoTiles"),
    ("dataset", "pathology_label_subset", "maekit_pathology.evaluate:LabelSubset"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"pathology": "maekit_pathology.demo:run_pathology_demo"},
    commands=["maekit_pathology.cli:pathology_stains", "maekit_pathology.cli:pathology_eval"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"probe": ["label_counts"]}
