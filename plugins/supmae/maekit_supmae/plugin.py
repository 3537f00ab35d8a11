"""The maekit hooks of maekit-supmae. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "supmae", "maekit_supmae.method:supmae"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"supmae": "maekit_supmae.demo:run_supmae_demo"},
)
