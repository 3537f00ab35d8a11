"""The maekit hooks of maekit-face. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

# (kind, name, "module:object"); prefixed by the method or the plugin so they cannot clash
COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "mcm", "maekit_face.mcm:mcm"),
    ("model", "au_detector", "maekit_face.au_model:au_detector"),
    ("model", "au_occlusion", "maekit_face.au_model:au_occlusion"),
    ("patchifier", "mcm_channel_patches", "maekit_face.mcm:ChannelPatchifier"),
    ("masker", "mcm_channel_mix", "maekit_face.mcm:ChannelMixMasker"),
    ("decoder", "mcm_decoders", "maekit_face.mcm:MCMDecoders"),
    ("target", "mcm_targets", "maekit_face.mcm:MCMTargets"),
    ("loss", "mcm_loss", "maekit_face.mcm:MCMLoss"),
    ("transform", "face_au_crop", "maekit_face.occlusion:AUCrop"),
    ("dataset", "face_bp4d", "maekit_face.data:BP4D"),
    ("dataset", "face_disfa", "maekit_face.data:DISFA"),
    ("dataset", "face_bp4d_plus", "maekit_face.data:BP4DPlus"),
    ("dataset", "face_procedural", "maekit_face.procedural:ProceduralFaces"),
    ("dataset", "face_lfw", "maekit_face.procedural:LFWFaces"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"face": "maekit_face.demo:run_face_demo", "mcm": "maekit_face.demo:run_mcm_demo"},
    commands=["maekit_face.cli:face_crop", "maekit_face.cli:au_eval"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The ``au`` section ``maekit au-eval`` reads (see maekit_face.evaluate)."""
    return {"au": ["data", "test", "eval_transform", "head", "schedule", "folds", "conditions", "train_occlusions",
                   "occlusion_threshold", "node_weight", "edge_weight", "drop_path_rate", "test_batch_size", "freeze_encoder"]}
