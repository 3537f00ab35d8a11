"""The maekit hooks of maekit-beit. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "beit", "maekit_beit.model:beit"),
    ("model", "peco", "maekit_beit.model:peco"),
    ("encoder", "beit_encoder", "maekit_beit.encoder:BEiTEncoder"),
    ("tokenizer", "dall_e", "maekit_beit.dalle:DallETokenizer"),
    ("tokenizer", "vq", "maekit_beit.vq:VQTokenizer"),
    ("tokenizer", "peco_vq", "maekit_beit.vq:peco_tokenizer"),
    ("transform", "beit_views", "maekit_beit.views:BEiTViews"),
]

maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"beit": "maekit_beit.demo:run_beit_demo"},
    commands=["maekit_beit.cli:tokenizer_train", "maekit_beit.cli:dalle_convert", "maekit_beit.cli:beit_convert"],
)
