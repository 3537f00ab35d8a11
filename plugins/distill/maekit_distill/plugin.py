"""The maekit hooks of maekit-distill. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "bootmae", "maekit_distill.bootmae:bootmae"),
    ("model", "sdae", "maekit_distill.sdae:sdae"),
    ("model", "dmae", "maekit_distill.dmae:dmae"),
    ("model", "tinymim", "maekit_distill.tinymim:tinymim"),
    ("transform", "tinymim_views", "maekit_distill.tinymim:TeacherStudentViews"),
    ("model", "milan", "maekit_distill.milan:milan"),
    ("model", "mimco", "maekit_distill.mimco:mimco"),
    ("loss", "contrastive_reconstruction", "maekit_distill.mimco:ContrastiveReconstructionLoss"),
    ("masker", "importance_mask", "maekit_distill.milan:ImportanceMasker"),
    ("loss", "cosine_distance", "maekit_distill.milan:CosineDistanceLoss"),
    ("loss", "centre_weighted_mse", "maekit_distill.bootmae:CentreWeightedMSELoss"),
    ("loss", "folded_cosine", "maekit_distill.sdae:FoldedCosineLoss"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"bootmae": "maekit_distill.demo:run_bootmae_demo", "sdae": "maekit_distill.demo:run_sdae_demo",
           "distill": "maekit_distill.demo:run_distill_demo"},
)
