"""The maekit hooks of maekit-video. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "videomae", "maekit_video.model:videomae"),
    ("model", "omnimae", "maekit_video.model:omnimae"),
    ("model", "maskfeat", "maekit_video.model:maskfeat"),
    ("model", "video_classifier", "maekit_video.model:video_classifier"),
    ("model", "siammae", "maekit_video.siammae:siammae"),
    ("decoder", "frame_pair_decoder", "maekit_video.siammae:FramePairDecoder"),
    ("model", "mvd", "maekit_video.mvd:mvd"),
    ("encoder", "video_vit_encoder", "maekit_video.model:VideoViTEncoder"),
    ("decoder", "videomae_decoder", "maekit_video.model:VideoMAEDecoder"),
    ("decoder", "omnimae_decoder", "maekit_video.model:OmniMAEDecoder"),
    ("masker", "omnimae_mask", "maekit_video.model:SourceRatioMasker"),
    ("transform", "videomae_augment", "maekit_video.data:VideoMAEAugment"),
    ("transform", "video_resized_crop", "maekit_video.data:VideoResizedCropAugment"),
    ("transform", "video_eval", "maekit_video.data:VideoEvalTransform"),
    ("transform", "video_clip_bytes", "maekit_video.data:VideoClipBytes"),
    ("dataset", "video_list", "maekit_video.data:VideoList"),
    ("dataset", "rawframe_list", "maekit_video.data:RawframeList"),
    ("dataset", "kinetics_csv", "maekit_video.data:KineticsCSV"),
    ("dataset", "ssv2", "maekit_video.data:SomethingSomethingV2"),
    ("dataset", "ucf101", "maekit_video.data:UCF101"),
    ("dataset", "hmdb51", "maekit_video.data:HMDB51"),
    ("dataset", "video_folder", "maekit_video.data:VideoFolder"),
    ("dataset", "video_demo_moving_digits", "maekit_video.demo_data:MovingDigits"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"video": "maekit_video.demo:run_video_demo", "siammae": "maekit_video.demo:run_siammae_demo",
           "mvd": "maekit_video.demo:run_mvd_demo"},
    commands=["maekit_video.cli:video_eval", "maekit_video.cli:video_convert", "maekit_video.cli:video_propagate"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"frozen_eval": ["train", "test", "k"],
            "propagation": ["topk", "radius", "context", "temperature", "size", "resolution"]}
