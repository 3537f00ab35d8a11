"""The maekit hooks of maekit-videotext. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "simvtp", "maekit_videotext.model:simvtp"),
    ("model", "smaug", "maekit_videotext.model:smaug"),
    ("tokenizer", "videotext_caption_tokenizer", "maekit_videotext.text:CaptionTokenizer"),
    ("loss", "videotext_mlm_loss", "maekit_videotext.losses:MaskedLanguageLoss"),
    ("loss", "videotext_vtc_loss", "maekit_videotext.losses:VideoTextContrastiveLoss"),
    ("loss", "videotext_vtm_loss", "maekit_videotext.losses:VideoTextMatchingLoss"),
    ("dataset", "videotext_captions", "maekit_videotext.data:VideoCaptions"),
    ("dataset", "videotext_webvid", "maekit_videotext.data:WebVidCSV"),
    ("dataset", "videotext_msrvtt", "maekit_videotext.data:MSRVTT"),
    ("dataset", "videotext_demo_moving_digits", "maekit_videotext.demo_data:CaptionedMovingDigits"),
]

maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"videotext": "maekit_videotext.demo:run_videotext_demo", "smaug": "maekit_videotext.demo:run_smaug_demo"},
    commands=["maekit_videotext.cli:videotext_eval"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config section ``maekit videotext-eval`` reads, with its keys."""
    return {"retrieval": ["test", "train", "batch_size", "ks", "finetune", "eval_transform"]}
