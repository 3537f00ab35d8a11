"""The maekit hooks of maekit-flip. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "flip", "maekit_flip.model:flip"),
    ("decoder", "flip_image_projection", "maekit_flip.towers:ImageProjection"),
    ("target", "flip_text_tower", "maekit_flip.towers:TextTower"),
    ("loss", "flip_contrastive_loss", "maekit_flip.loss:ContrastiveLoss"),
    ("dataset", "flip_csv", "maekit_flip.data:CsvCaptions"),
    ("dataset", "flip_coco_captions", "maekit_flip.data:CocoCaptions"),
    ("dataset", "flip_webdataset", "maekit_flip.data:WebDatasetCaptions"),
    ("dataset", "flip_digits_captions", "maekit_flip.data:DigitsCaptions"),
    ("transform", "flip_tokenize", "maekit_flip.tokenizer:CaptionTokens"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"flip": "maekit_flip.demo:run_flip_demo"},
    commands=["maekit_flip.cli:zeroshot", "maekit_flip.cli:retrieval"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"zeroshot": ["dataset", "templates", "classnames", "tokenizer"],
            "retrieval": ["dataset", "ks", "tokenizer"]}
