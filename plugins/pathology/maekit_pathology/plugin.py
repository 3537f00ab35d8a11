"""The maekit hooks of maekit-pathology. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl

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


@hookimpl
def maekit_register(registry) -> None:
    registry.register_all(COMPONENTS)


@hookimpl
def maekit_config_dirs() -> list:
    return [Path(__file__).parent / "configs"]


@hookimpl
def maekit_demos() -> dict:
    return {"pathology": "maekit_pathology.demo:run_pathology_demo"}


@hookimpl
def maekit_commands() -> list:
    from maekit_pathology.cli import pathology_eval, pathology_stains  # click only; torch loads when they run

    return [pathology_stains, pathology_eval]
