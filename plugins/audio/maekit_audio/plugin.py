"""The maekit hooks of maekit-audio. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "audio_mae", "maekit_audio.model:audio_mae"),
    ("model", "audio_classifier", "maekit_audio.model:audio_classifier"),
    ("encoder", "audio_vit_encoder", "maekit_audio.model:AudioViTEncoder"),
    ("decoder", "audio_mae_decoder", "maekit_audio.model:AudioMAEDecoder"),
    ("masker", "audio_time_frequency_mask", "maekit_audio.model:TimeFrequencyMasker"),
    ("transform", "audio_fbank", "maekit_audio.frontend:FbankFrontEnd"),
    ("transform", "audio_bytes", "maekit_audio.frontend:AudioBytes"),
    ("transform", "audio_mae_augment", "maekit_audio.data:AudioMAEAugment"),
    ("dataset", "audio_folder", "maekit_audio.data:AudioFolder"),
    ("dataset", "esc50", "maekit_audio.data:ESC50"),
    ("dataset", "speech_commands", "maekit_audio.data:SpeechCommands"),
    ("dataset", "audioset_segments", "maekit_audio.data:AudioSetSegments"),
    ("dataset", "audioset_json", "maekit_audio.data:AudioSetJSON"),
    ("dataset", "vggsound", "maekit_audio.data:VGGSound"),
    ("dataset", "audio_demo_spoken_digits", "maekit_audio.demo_data:SpokenDigits"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"audio": "audio_mae_demo"},  # core's demo: pre-train, probe vs random init, pictures
    commands=["maekit_audio.cli:audio_eval", "maekit_audio.cli:audio_convert"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"frozen_eval": ["train", "test", "k"]}
