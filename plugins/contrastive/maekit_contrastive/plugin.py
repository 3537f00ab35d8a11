"""The maekit hooks of maekit-contrastive. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "cmae", "maekit_contrastive.cmae:cmae"),
    ("model", "macrl", "maekit_contrastive.macrl:macrl"),
    ("model", "sdmae", "maekit_contrastive.sdmae:sdmae"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"cmae": "maekit_contrastive.demo:run_cmae_demo", "macrl": "maekit_contrastive.demo:run_macrl_demo",
           "sdmae": "maekit_contrastive.demo:run_sdmae_demo", "contrastive": "maekit_contrastive.demo:run_contrastive_demo"},
)
