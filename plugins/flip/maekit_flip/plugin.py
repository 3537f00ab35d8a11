"""The maekit hooks of maekit-flip. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "flip", "maekit_flip.model:flip"),
    ("decoder", "flip_image_projection", "maekit_flip.towers:ImageProjection"),
    ("target", "flip_text_tower", "maekit_flip.towers:TextTower"),
    ("loss", "flip_contrastive_loss", "maekit_flip.loss:ContrastiveLoss"),
    ("dataset", "flip_csv", "maekit_flip.data:CsvCaptions"),
    ("dataset", "flip_coco_captions", "maekit_flip.data:CocoCaptions"),
    ("dataset", "flip_webdataset", "maekit_flip.data:WebDatasetCaptions"),
    ("dataset", "flip_digits_captions", "maekit_flip.data:DigitsCaptions"),
]


@hookimpl
def maekit_register(registry) -> None:
    registry.register_all(COMPONENTS)


@hookimpl
def maekit_config_dirs() -> list:
    return [Path(__file__).parent / "configs"]


@hookimpl
def maekit_demos() -> dict:
    return {"flip": "maekit_flip.demo:run_flip_demo"}


@hookimpl
def maekit_commands() -> list:
    from maekit_flip.cli import retrieval, zeroshot  # click only; torch is imported when they run

    return [zeroshot, retrieval]
