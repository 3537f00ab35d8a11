"""The maekit hooks of maekit-skeleton. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl

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


@hookimpl
def maekit_register(registry) -> None:
    registry.register_all(COMPONENTS)


@hookimpl
def maekit_config_dirs() -> list:
    return [Path(__file__).parent / "configs"]


@hookimpl
def maekit_demos() -> dict:
    return {"skeleton": "maekit_skeleton.demo:run_skeleton_demo"}


@hookimpl
def maekit_commands() -> list:
    from maekit_skeleton.cli import skeleton_eval, skeleton_preprocess  # click only; torch loads when they run

    return [skeleton_preprocess, skeleton_eval]
