"""The maekit hooks of maekit-attnmask. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "amt", "maekit_attnmask.amt:amt"),
    ("model", "attmask", "maekit_attnmask.attmask:attmask"),
    ("model", "mra_classifier", "maekit_attnmask.mra:mra_classifier"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"amt": "maekit_attnmask.demo:run_amt_demo", "attmask": "maekit_attnmask.demo:run_attmask_demo",
           "mra": "maekit_attnmask.demo:run_mra_demo", "attnmask": "maekit_attnmask.demo:run_attnmask_demo"},
)
