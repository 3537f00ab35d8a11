"""The maekit hooks of maekit-audiovisual. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "av_mae", "maekit_audiovisual.model:av_mae"),
    ("model", "mavil", "maekit_audiovisual.model:mavil"),
    ("dataset", "av_clips", "maekit_audiovisual.data:AudioVisualCSV"),
    ("dataset", "av_folder", "maekit_audiovisual.data:AudioVisualFolder"),
    ("dataset", "av_vggsound", "maekit_audiovisual.data:VGGSoundAV"),
    ("dataset", "av_demo_talking_digits", "maekit_audiovisual.demo_data:TalkingDigits"),
]

maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"audiovisual": "maekit_audiovisual.demo:run_audiovisual_demo", "mavil": "maekit_audiovisual.demo:run_mavil_demo"},
    commands=["maekit_audiovisual.cli:av_eval"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config section ``maekit av-eval`` reads, with its keys."""
    return {"av_eval": ["train", "test", "batch_size", "ks", "knn_k", "finetune"]}
