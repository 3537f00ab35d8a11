"""Configs shipped with core, and lookup of configs by name across plugins."""
from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR", "available_configs", "find_config"]

CONFIG_DIR = Path(__file__).parent


def available_configs() -> dict[str, Path]:
    """Name → file of every config contributed by loaded plugins (core first; ``_base_`` files hidden)."""
    from maekit.plugins import config_dirs

    found: dict[str, Path] = {}
    for folder in config_dirs():
        for path in sorted(Path(folder).glob("*.py")):
            if not path.name.startswith("_"):
                found.setdefault(path.stem, path)
    return found


def find_config(config: str | Path) -> Path:
    """A config path as given, or the file of a config name (``maekit configs`` lists them)."""
    path = Path(config)
    if path.is_file():
        return path
    configs = available_configs()
    name = path.name[:-3] if path.name.endswith(".py") else path.name
    if name in configs:
        return configs[name]
    raise ValueError(f"config {str(config)!r} is neither a file nor a known config name; "
                     f"known: {', '.join(sorted(configs)) or '(none)'}")
