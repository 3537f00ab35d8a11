"""``maekit check-plugin``: validate a plugin folder (or one local .py file) before shipping it.

Checks, each reported with what to do about a failure: the pyproject's ``maekit`` entry point;
that the entry module imports and its hooks match maekit's hookspecs; every component's kind,
lazy path and docstring; names that clash with what other installed plugins (or core) register;
configs that load; demos that point at something real; commands; the tests folder's layout.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["Finding", "check_plugin", "private_core_imports"]


@dataclass
class Finding:
    level: str  # "ok", "warning" or "error"
    message: str


class _Report(list):
    def ok(self, message: str) -> None:
        self.append(Finding("ok", message))

    def warn(self, message: str) -> None:
        self.append(Finding("warning", message))

    def error(self, message: str) -> None:
        self.append(Finding("error", message))


def _entry_module(folder: Path, report: _Report) -> tuple[ModuleType | None, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        report.error(f"{pyproject}: missing (a plugin folder needs a pyproject.toml; `maekit new-plugin` writes one)")
        return None, folder.name
    try:
        project = tomllib.loads(pyproject.read_text()).get("project", {})
    except tomllib.TOMLDecodeError as error:
        report.error(f"{pyproject}: not valid TOML ({error})")
        return None, folder.name
    dist = project.get("name", "")
    if not dist:
        report.error(f"{pyproject}: [project] has no name")
    elif not dist.startswith("maekit-"):
        report.warn(f"{pyproject}: distribution {dist!r} is not named maekit-<name> (the convention)")
    points = project.get("entry-points", {}).get("maekit", {})
    if len(points) != 1:
        report.error(f"{pyproject}: expected one entry point in [project.entry-points.maekit] "
                     f"(e.g. `<name> = \"maekit_<name>.plugin\"`), found {len(points)}")
        return None, dist
    (point_name, target), = points.items()
    module_name = target.partition(":")[0]
    report.ok(f"entry point {point_name} = {target!r}")
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the user's code: anything may go wrong on import
        report.error(f"entry point module {module_name!r} does not import: {type(error).__name__}: {error}")
        return None, dist
    finally:
        sys.path.remove(str(folder))
    if ":" in target:
        module = getattr(module, target.partition(":")[2], None)
        if module is None:
            report.error(f"entry point {target!r}: {module_name} has no attribute {target.partition(':')[2]!r}")
    return module, dist


def _check_hooks(plugin: Any, report: _Report):
    import pluggy

    from maekit import hookspecs

    manager = pluggy.PluginManager("maekit")
    manager.add_hookspecs(hookspecs)
    known = {name for name in dir(hookspecs) if name.startswith("maekit_")}
    for name, value in inspect.getmembers(plugin, callable):
        if name.startswith("maekit_") and name not in known:
            report.error(f"hook {name!r} is not a maekit hook; known hooks: {', '.join(sorted(known))}")
        elif name in known and not hasattr(value, "maekit_impl"):
            report.error(f"{name} is not decorated with @maekit.hookimpl, so maekit will never call it")
    try:
        manager.register(plugin, name="checked-plugin")
    except pluggy.PluginValidationError as error:
        report.error(f"hooks do not match maekit's hookspecs: {error}")
        return None
    implemented = sorted(name for name in known if getattr(manager.hook, name).get_hookimpls())
    report.ok(f"hooks match maekit's hookspecs: {', '.join(implemented) or '(none implemented)'}")
    return manager


def _check_components(manager: Any, dist: str, report: _Report) -> list[tuple[str, str]]:
    from maekit.plugins import Registrar, call_register, ensure_plugins_loaded, normalise_name
    from maekit.registry import KINDS, Provider, registry_for

    entries = []
    try:
        call_register(manager, Registrar(Provider(dist or "checked-plugin"), entries.append))
    except Exception as error:  # the plugin's own code
        report.error(f"maekit_register failed: {type(error).__name__}: {error}")
        return []
    ensure_plugins_loaded()
    names = []
    for entry in entries:
        label = f"{entry.kind} {entry.name!r}"
        try:
            target = entry.load()
        except Exception as error:
            report.error(f"{label}: target {entry.target!r} does not import: {type(error).__name__}: {error}")
            continue
        if not (getattr(target, "__doc__", None) or "").strip():
            report.error(f"{label}: {getattr(target, '__qualname__', target)!r} has no docstring "
                         f"(say what it does and which paper convention it follows)")
        existing = registry_for(entry.kind).entries.get(entry.name) if entry.kind in KINDS else None
        if existing is not None and normalise_name(existing.provider.name) != normalise_name(dist):
            report.error(f"{label}: already registered by {existing.provider} — prefix your names with the method")
        names.append((entry.kind, entry.name))
    if entries:
        report.ok(f"{len(entries)} component(s): " + ", ".join(f"{k} {n}" for k, n in names))
    else:
        report.warn("registers no components")
    return names


def _check_configs(manager: Any, report: _Report) -> set[str]:
    from mmengine.config import Config

    found: set[str] = set()
    for impl in manager.hook.maekit_config_dirs.get_hookimpls():
        for folder in impl.function() or []:
            folder = Path(folder)
            if not folder.is_dir():
                report.error(f"config folder {folder} does not exist")
                continue
            for path in sorted(folder.glob("*.py")):
                if path.name == "__init__.py":
                    continue
                try:
                    Config.fromfile(str(path))
                except Exception as error:
                    report.error(f"config {path}: does not load: {type(error).__name__}: {error}")
                    continue
                found.add(path.stem)
    if found:
        report.ok(f"{len(found)} config(s) load: {', '.join(sorted(found))}")
    return found


def _check_demos_and_commands(manager: Any, configs: set[str], report: _Report) -> None:
    from maekit.configs import find_config

    for impl in manager.hook.maekit_demos.get_hookimpls():
        for name, target in (impl.function() or {}).items():
            if ":" in target:
                module, _, function = target.partition(":")
                try:
                    ok = callable(getattr(importlib.import_module(module), function))
                except Exception:
                    ok = False
                if not ok:
                    report.error(f"demo {name!r}: {target!r} is not an importable function")
                    continue
            elif target not in configs:
                try:
                    find_config(target)
                except (ValueError, FileNotFoundError):
                    report.error(f"demo {name!r}: config {target!r} is not among the plugin's configs")
                    continue
            report.ok(f"demo {name!r} → {target}")
    for impl in manager.hook.maekit_commands.get_hookimpls():
        import click

        from maekit.cli.main import main

        for command in impl.function() or []:
            if not isinstance(command, click.Command):
                report.error(f"maekit_commands returned {command!r}, not a click.Command")
            elif command.name in main.commands:
                report.error(f"command {command.name!r} clashes with maekit's own command")
            else:
                report.ok(f"command maekit {command.name}")


def private_core_imports(root: Path) -> list[str]:
    """``file:line: name`` for every import of a ``_``-private name of core (``from maekit.x import
    _y``, ``import maekit._x``) in ``root`` (a .py file, or the .py files under a folder): a plugin
    uses only public names."""
    import ast

    found = []
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    for path in files:
        if path != root and any(part.startswith(".") or part in ("build", "__pycache__")
                                for part in path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError):
            continue  # not this check's concern: the import check reports files that do not load
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "maekit":
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.split(".")[0] == "maekit"]
            else:
                continue
            private = [n for n in names if any(part.startswith("_") for part in n.split(".")[1:])]
            found += [f"{path}:{node.lineno}: {name}" for name in dict.fromkeys(private)]
    return found


def _check_layout(folder: Path, short_name: str, report: _Report) -> None:
    tests = folder / "tests"
    if not tests.is_dir() or not list(tests.glob("test_*.py")):
        report.error(f"{tests}: no test_*.py files (every plugin ships tests)")
        return
    for forbidden in ("__init__.py", "conftest.py"):
        if (tests / forbidden).exists():
            report.error(f"{tests / forbidden}: remove it; the root test command collects every plugin's tests "
                         f"together (use the maekit.authoring.testing fixtures instead)")
    clashing = [p.name for p in tests.glob("test_*.py") if not p.name.startswith(f"test_{short_name}_")]
    if clashing:
        report.warn(f"test files {clashing} are not named test_{short_name}_*.py; names must be unique across plugins")
    if not (folder / "README.md").is_file():
        report.warn(f"{folder / 'README.md'}: missing (what the method is, its paper, measured demo numbers)")


def check_plugin(path: str | Path) -> list[Finding]:
    """Every finding about the plugin at ``path`` (a plugin folder, or a single .py plugin file)."""
    from maekit.plugins import _import_file

    path = Path(path).resolve()
    report = _Report()
    if path.is_file() and path.suffix == ".py":
        try:
            plugin, dist, folder = _import_file(path), path.stem, None
        except Exception as error:
            report.error(f"{path}: does not import: {type(error).__name__}: {error}")
            return report
    elif path.is_dir():
        plugin, dist = _entry_module(path, report)
        folder = path
        if plugin is None:
            return report
    else:
        report.error(f"{path}: not a plugin folder (with pyproject.toml) or a .py plugin file")
        return report
    manager = _check_hooks(plugin, report)
    if manager is None:
        return report
    _check_components(manager, dist, report)
    configs = _check_configs(manager, report)
    _check_demos_and_commands(manager, configs, report)
    if folder is not None:
        short_name = dist.removeprefix("maekit-").replace("-", "_")
        _check_layout(folder, short_name, report)
    for place in private_core_imports(folder if folder is not None else path):
        report.error(f"{place}: a private name of core; plugins use only public names (for commands: maekit.cli.support)")
    return report
