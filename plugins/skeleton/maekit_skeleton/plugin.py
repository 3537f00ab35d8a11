"""The maekit hooks of maekit-skeleton. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "skeleton_mae", "maekit_skeleton.model:skeleton_mae"),
    ("model", "skeleton_classifier", "maekit_skeleton.evaluate:skeleton_classifier"),
    ("patchifier", "skeleton_patches", "maekit_skeleton.model:SkeletonPatchifier"),
    ("encoder", "skeleton_encoder", "maekit_skeleton.model:SkeletonEncoder"),
    ("decoder", "skeleton_decoder", "maekit_skeleton.model:SkeletonDecoder"),
    ("masker", "skeleton_spatiotemporal_masker", "maekit_skeleton.model:SpatioTemporalMasker"),
    ("masker", "skeleton_joint_masker", "maekit_skeleton.model:JointMasker"),
    ("masker", "skeleton_frame_masker", "maekit_skeleton.model:FrameMasker"),
    ("masker", "skeleton_motion_aware_masker", "maekit_skeleton.model:MotionAwareMasker"),
    ("target", "skeleton_motion_target", "maekit_skeleton.model:MotionTarget"),
    ("transform", "skeleton_augment", "maekit_skeleton.data:SkeletonAugment"),
    ("transform", "skeleton_eval_transform", "maekit_skeleton.data:SkeletonEvalTransform"),
    ("dataset", "ntu_skeletons", "maekit_skeleton.data:NTUSkeletons"),
    ("dataset", "ntu_npz", "maekit_skeleton.data:NTUNpz"),
    ("dataset", "ntu_npy", "maekit_skeleton.data:NTUNpy"),
    ("dataset", "skeleton_demo_motions", "maekit_skeleton.demo_data:DemoSkeletons"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"skeleton": "maekit_skeleton.demo:run_skeleton_demo"},
    commands=["maekit_skeleton.cli:skeleton_preprocess", "maekit_skeleton.cli:skeleton_eval"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"linear_eval": ["train", "test", "num_classes", "epochs", "batch_size", "lr"]}
