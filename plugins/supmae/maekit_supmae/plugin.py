"""The maekit hooks of maekit-supmae. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "supmae", "maekit_supmae.method:supmae"),
]


@hookimpl
def maekit_register(registry) -> None:
    registry.register_all(COMPONENTS)


@hookimpl
def maekit_config_dirs() -> list:
    return [Path(__file__).parent / "configs"]


@hookimpl
def maekit_demos() -> dict:
    return {"supmae": "maekit_supmae.demo:run_supmae_demo"}
