"""Plugin discovery and loading.

Plugins are found through the entry-point group ``maekit`` (each entry point names a hook module)
and through single local files. Each plugin is loaded on its own: one that fails to import or to
register is reported (name, version, error), everything it had registered is removed, and the rest
keeps working. Selection by environment:

- ``MAEKIT_PLUGINS``: comma-separated allowlist of plugin names; set but empty = no plugins.
- ``MAEKIT_DISABLE_PLUGINS``: comma-separated names to skip.
- ``MAEKIT_PLUGIN_FILES``: local ``.py`` plugin files, separated by ``os.pathsep``.
- ``MAEKIT_STRICT_PLUGINS=1``: re-raise the first plugin failure instead of reporting it.

A plugin name is its distribution name (``maekit-mri``); the entry point's own name (``mri``) is
accepted too. Plugins load in name order; of two that register the same name, the later one fails.
Core's own components are registered by :mod:`maekit.builtin`, always loaded.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

import pluggy

from maekit import hookspecs
from maekit.registry import KINDS, Entry, Provider, registry_for

__all__ = [
    "Registrar", "PluginRecord", "PluginHost", "PluginLoadError", "load_plugins", "ensure_plugins_loaded",
    "current_host", "providers_of_disabled", "config_dirs", "sample_data", "config_keys", "merge_config_keys", "demos", "commands", "call_register", "normalise_name",
    "unknown_hooks",
]

CORE_NAME = "maekit"


class PluginLoadError(RuntimeError):
    """A plugin failed to load while strict mode was on."""


class Registrar:
    """What a plugin's ``maekit_register`` hook receives: registers entries under one provider."""

    def __init__(self, provider: Provider, sink: Callable[[Entry], None]) -> None:
        self.provider = provider
        self._sink = sink

    def register(self, kind: str, target: Any, name: str | None = None, summary: str = "") -> None:
        """Register ``target`` (object or lazy ``"package.module:Name"``) as ``name`` in ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"{self.provider}: unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")
        if name is None:
            name = target.rpartition(":")[2] if isinstance(target, str) else getattr(target, "__name__", None)
        if not name:
            raise ValueError(f"{self.provider}: {kind} {target!r} needs an explicit name")
        if isinstance(target, str) and ":" not in target:
            raise ValueError(f"{self.provider}: lazy target {target!r} must look like 'package.module:Name'")
        self._sink(Entry(kind=kind, name=name, target=target, provider=self.provider, summary=summary))

    def register_all(self, components: Iterable[tuple[str, str, Any]]) -> None:
        """Register ``(kind, name, target)`` rows, e.g. a plugin's ``COMPONENTS`` table."""
        for kind, name, target in components:
            self.register(kind, target, name=name)


@dataclass
class PluginRecord:
    """What happened to one plugin: ``loaded``, ``failed`` or ``disabled``."""

    name: str
    version: str
    status: str
    error: str = ""
    source: str = ""
    loader: Callable[[], ModuleType] | None = field(default=None, repr=False)
    warning: str = ""

    def as_dict(self) -> dict[str, str]:
        row = {"name": self.name, "version": self.version, "status": self.status, "error": self.error}
        return {**row, "warning": self.warning} if self.warning else row


def unknown_hooks(plugin: object) -> list[str]:
    """Names of ``plugin``'s functions that look like maekit hooks (``maekit_*``) but are none of
    :mod:`maekit.hookspecs` — a misspelt hook (``maekit_regster``) that maekit would never call."""
    known = {name for name in dir(hookspecs) if name.startswith("maekit_")}
    return sorted(name for name in dir(plugin)
                  if name.startswith("maekit_") and name not in known and callable(getattr(plugin, name, None)))


def normalise_name(name: str) -> str:
    """Plugin names compare case-insensitively, with "_" and "-" alike (as pip does)."""
    return name.strip().lower().replace("_", "-")


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {normalise_name(n) for n in value.replace(" ", ",").split(",") if n.strip()}


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"plugin file {path} does not exist")
    if path.suffix != ".py":
        raise ValueError(f"plugin file {path} is not a .py file")
    module_name = f"maekit_local_{path.stem}_{abs(hash(str(path))) % 10**8}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # lets the file's classes be pickled and introspected
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


class PluginHost:
    """A pluggy manager plus the record of every plugin it tried to load."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.pm = pluggy.PluginManager("maekit")
        self.pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []

    # -- loading ---------------------------------------------------------------------------
    def load(self, name: str, version: str, loader: Callable[[], ModuleType | object],
             origin: str = "distribution", source: str = "") -> PluginRecord:
        """Import one plugin, register its hooks and components; isolate and report failures."""
        provider = Provider(name=name, version=version, origin=origin)
        plugin: Any = None
        try:
            plugin = loader()
            self.pm.register(plugin, name=name)
            self._call_register(plugin, Registrar(provider, _add_to_registry))
            record = PluginRecord(name, version, "loaded", source=source)
            misspelt = unknown_hooks(plugin)
            if misspelt:
                known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("maekit_")))
                record.warning = (f"{', '.join(misspelt)} look like maekit hooks but are not (known: {known}); "
                                  f"maekit never calls them")
                warnings.warn(f"plugin {provider}: {record.warning}", stacklevel=2)
        except Exception as error:  # one broken plugin must not take the others down
            for kind in KINDS:
                registry_for(kind).remove_provider(provider)
            if self.pm.has_plugin(name):
                self.pm.unregister(name=name)
            record = PluginRecord(name, version, "failed", f"{type(error).__name__}: {error}", source)
            if self.strict:
                self.records.append(record)
                raise PluginLoadError(f"plugin {provider} failed to load: {record.error}") from error
        self.records.append(record)
        return record

    def _call_register(self, plugin: object, registrar: Registrar) -> None:
        # Called per plugin (not through the combined hook) so that each component is attributed
        # to the plugin that registered it and a failure is isolated to that plugin.
        call_register(self.pm, registrar, plugin)

    def load_core(self) -> None:
        from maekit import builtin

        self.load(CORE_NAME, _core_version(), lambda: builtin, source="maekit.builtin")

    def load_entry_points(self, allow: set[str] | None, deny: set[str]) -> None:
        seen: set[str] = set()
        # Name order makes loading, and so which of two clashing plugins fails, reproducible.
        for ep in sorted(metadata.entry_points(group="maekit"), key=lambda e: (e.dist.name if e.dist else e.name)):
            dist_name = ep.dist.name if ep.dist is not None else ep.name
            version = ep.dist.version if ep.dist is not None else ""
            names = {normalise_name(dist_name), normalise_name(ep.name)}
            if normalise_name(dist_name) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(normalise_name(dist_name))
            if (allow is not None and not names & allow) or names & deny:
                self.records.append(PluginRecord(dist_name, version, "disabled", source=ep.value, loader=ep.load))
                continue
            self.load(dist_name, version, ep.load, source=ep.value)

    def load_file(self, path: str | Path) -> PluginRecord:
        path = Path(path).resolve()
        for record in self.records:  # the same file named twice is loaded once
            if record.name == str(path) and record.status == "loaded":
                return record
        return self.load(str(path), "", lambda: _import_file(path), origin="file", source=str(path))

    # -- queries ----------------------------------------------------------------------------
    def disabled_providers_of(self, kind: str, name: str) -> list[str]:
        """Disabled plugins that would register ``name`` in ``kind`` (asked only on an error path)."""
        found = []
        for record in self.records:
            if record.status != "disabled" or record.loader is None:
                continue
            names: list[tuple[str, str]] = []

            def note(entry: Entry, found: list[tuple[str, str]] = names) -> None:
                found.append((entry.kind, entry.name))

            try:
                plugin = record.loader()
                scratch = pluggy.PluginManager("maekit")
                scratch.add_hookspecs(hookspecs)
                scratch.register(plugin, name=f"probe-{record.name}")
                call_register(scratch, Registrar(Provider(record.name, record.version), note))
            except Exception:  # a disabled plugin may well be broken; it only misses the hint
                continue
            if (kind, name) in names:
                found.append(f"{record.name} {record.version}".strip())
        return found


def call_register(manager: pluggy.PluginManager, registrar: Registrar, plugin: object | None = None) -> None:
    """Call the ``maekit_register`` hooks of ``manager`` (only ``plugin``'s, if given) with
    ``registrar``, which decides where the entries go."""
    for impl in manager.hook.maekit_register.get_hookimpls():
        if plugin is None or impl.plugin is plugin:
            impl.function(**{arg: registrar for arg in impl.argnames})


def _add_to_registry(entry: Entry) -> None:
    registry_for(entry.kind).add(entry)


def _core_version() -> str:
    from maekit import __version__

    return __version__


_HOST: PluginHost | None = None
_LOADING = False


def load_plugins(files: Iterable[str | Path] = (), strict: bool | None = None) -> PluginHost:
    """(Re)load core, the installed plugins selected by the environment, and local files.

    Replaces what was registered before; returns the host with one record per plugin.
    """
    global _HOST, _LOADING
    for kind in KINDS:
        registry_for(kind).entries.clear()
    if strict is None:
        strict = os.environ.get("MAEKIT_STRICT_PLUGINS", "") not in ("", "0", "false", "no")
    host = PluginHost(strict=strict)
    _HOST, _LOADING = host, True
    try:
        host.load_core()
        host.load_entry_points(_names_from_env("MAEKIT_PLUGINS"), _names_from_env("MAEKIT_DISABLE_PLUGINS") or set())
        env_files = [f for f in os.environ.get("MAEKIT_PLUGIN_FILES", "").split(os.pathsep) if f]
        for path in [*env_files, *files]:
            host.load_file(path)
    finally:
        _LOADING = False
    return host


def ensure_plugins_loaded() -> PluginHost:
    """The current host, loading plugins on first use."""
    if _HOST is None and not _LOADING:
        return load_plugins()
    assert _HOST is not None
    return _HOST


def current_host() -> PluginHost | None:
    return _HOST


def set_host(host: PluginHost | None) -> None:
    """Replace the global host (used by the test fixtures to isolate tests)."""
    global _HOST
    _HOST = host


def providers_of_disabled(kind: str, name: str) -> str:
    host = current_host()
    return ", ".join(host.disabled_providers_of(kind, name)) if host else ""


def config_dirs() -> list[Path]:
    """Every config folder contributed by loaded plugins (core first)."""
    host = ensure_plugins_loaded()
    return [Path(d) for dirs in reversed(host.pm.hook.maekit_config_dirs()) for d in dirs]


def merge_config_keys(declarations: Iterable[Mapping[str, Iterable[str] | None] | None]) -> dict[str, list[str] | None]:
    """Config sections declared several times, merged: the union of their keys; a section
    declared with ``None`` (any keys) stays ``None``."""
    merged: dict[str, list[str] | None] = {}
    for declaration in declarations:
        for section, keys in (declaration or {}).items():
            if keys is None or (section in merged and merged[section] is None):
                merged[section] = None
            else:
                merged[section] = sorted({*(merged.get(section) or []), *keys})
    return merged


def config_keys() -> dict[str, list[str] | None]:
    """Every config section loaded plugins declare (``maekit_config_keys``), merged."""
    return merge_config_keys(ensure_plugins_loaded().pm.hook.maekit_config_keys())


def sample_data() -> dict[str, Callable[[], object]]:
    """Every named sample-data loader contributed by loaded plugins."""
    host = ensure_plugins_loaded()
    merged: dict[str, Callable[[], object]] = {}
    for contribution in reversed(host.pm.hook.maekit_sample_data()):
        merged.update(contribution)
    return merged


def _offers(hook: str, named: Callable[[Any], Iterable[tuple[str, Any]]], what: str) -> dict[str, Any]:
    """Everything loaded plugins offer through ``hook``, by name (``named`` turns one plugin's
    answer into ``(name, thing)`` pairs); one name offered twice is an error naming both plugins."""
    host = ensure_plugins_loaded()
    merged: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for impl in getattr(host.pm.hook, hook).get_hookimpls():
        for name, thing in named(impl.function()):
            if name in merged:
                raise PluginLoadError(f"{what} {name!r} is offered by both {owners[name]} and {impl.plugin_name}")
            merged[name], owners[name] = thing, impl.plugin_name
    return merged


def demos() -> dict[str, str]:
    """Every demo contributed by loaded plugins (name → config name or "module:function").
    Two plugins offering the same demo name is an error naming both."""
    return _offers("maekit_demos", lambda offered: (offered or {}).items(), "demo")


def commands() -> dict[str, Any]:
    """Every ``maekit`` subcommand contributed by loaded plugins (name → click command). Two
    plugins offering the same command name is an error naming both."""
    return _offers("maekit_commands", lambda offered: [(command.name, command) for command in offered or []],
                   "command")
