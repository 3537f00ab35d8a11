"""The maekit hooks of maekit-ttt. Components are registered by dotted path, so listing them
imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "ttt_mae", "maekit_ttt.ttt_mae:ttt_mae"),
    ("model", "ttt_rotation", "maekit_ttt.rotation:ttt_rotation"),
    ("dataset", "corrupted", "maekit_ttt.data:CorruptedDataset"),
]

maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"ttt": "maekit_ttt.demo:run_ttt_demo"},
    commands=["maekit_ttt.cli:ttt_probe", "maekit_ttt.cli:ttt_eval"],
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read (``ttt``: test-time settings; ``ttt_eval``:
    what to test on; ``ttt_probe``: TTT-MAE's classifier training)."""
    return {"ttt": ["steps", "copies", "lr", "optimizer", "momentum", "weight_decay", "betas", "trainable", "reset",
                    "samples_per_batch", "seed"],
            "ttt_eval": ["test", "corrupted_root", "corruptions", "severities", "table", "limit", "clean", "seed", "classes", "channels"],
            "ttt_probe": ["data", "schedule"]}
