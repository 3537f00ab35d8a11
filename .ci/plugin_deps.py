"""Prints the plugin folders a plugin needs installed before it, then the plugin itself: the
plugins under plugins/ that its pyproject.toml declares as dependencies (``maekit-<name>``),
theirs first, each once. pip would look such a dependency up on the package index (where it is
not, or is someone else's); installing it from plugins/ first means pip finds it satisfied.

    python .ci/plugin_deps.py plugins/audiovisual   ->  plugins/audio plugins/video plugins/audiovisual
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: core depends on tomli there, and the set-up runs this with core's Python
    import tomli as tomllib

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def local_plugins(plugins: Path = PLUGINS) -> dict[str, Path]:
    """Distribution name (normalised) → folder, for every plugin under ``plugins``."""
    found = {}
    for pyproject in sorted(plugins.glob("*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        found[normalise(name)] = pyproject.parent
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(folder: Path) -> list[str]:
    """The distribution names in ``folder``'s ``[project] dependencies`` (no versions, extras or markers)."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    return [normalise(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in project.get("dependencies", [])]


def install_order(folder: Path, known: dict[str, Path], seen: list[Path], path: tuple[Path, ...] = ()) -> list[Path]:
    if folder in path:
        raise SystemExit(f"Error: plugins depend on each other in a cycle: {' -> '.join(p.name for p in (*path, folder))}")
    for name in declared(folder):
        if name in known and known[name] not in seen:
            install_order(known[name], known, seen, (*path, folder))
    if folder not in seen:
        seen.append(folder)
    return seen


if __name__ == "__main__":
    known = local_plugins()
    order: list[Path] = []
    for argument in sys.argv[1:]:
        install_order(Path(argument).resolve(), known, order)
    root = PLUGINS.parent
    print(" ".join(str(folder.relative_to(root)) for folder in order))
