"""pytest fixtures for maekit and its plugin authors (loaded by pytest through the ``pytest11`` entry point).

- ``fresh_registries``: empty registries and a clean plugin host for one test; everything that was
  registered before is restored afterwards.
- ``plugin_host``: ``fresh_registries`` with core's components loaded (no installed plugins).
- ``register_plugin``: a helper that registers a throwaway plugin (any object or module with
  ``@maekit.hookimpl`` functions) under a name and version, and returns its record.

And :func:`run_cli`, which runs the ``maekit`` command in a fresh process (real entry-point discovery).
"""
from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from maekit import plugins
from maekit.hookspecs import hookimpl
from maekit.registry import KINDS, registry_for


@pytest.fixture
def fresh_registries() -> Iterator[plugins.PluginHost]:
    saved = {kind: (dict(registry_for(kind).entries), dict(registry_for(kind)._module_dict)) for kind in KINDS}
    saved_host = plugins.current_host()
    for kind in KINDS:
        registry_for(kind).entries.clear()
        registry_for(kind)._module_dict.clear()
    host = plugins.PluginHost(strict=False)
    plugins.set_host(host)
    try:
        yield host
    finally:
        for kind, (entries, modules) in saved.items():
            registry = registry_for(kind)
            registry.entries.clear()
            registry.entries.update(entries)
            registry._module_dict.clear()
            registry._module_dict.update(modules)
        plugins.set_host(saved_host)


@pytest.fixture
def plugin_host(fresh_registries: plugins.PluginHost) -> plugins.PluginHost:
    fresh_registries.load_core()
    return fresh_registries


@pytest.fixture
def register_plugin(fresh_registries: plugins.PluginHost) -> Callable[..., plugins.PluginRecord]:
    def register(plugin: Any = None, name: str = "throwaway-plugin", version: str = "0.0.1",
                 **hooks: Callable[..., Any]) -> plugins.PluginRecord:
        """Register ``plugin``, or a plugin made of the ``hooks`` given as keyword functions."""
        if plugin is None:
            plugin = ModuleType(name)  # compares by identity, as pluggy expects of plugins
            for hook, function in hooks.items():
                setattr(plugin, hook, hookimpl(function))
        return fresh_registries.load(name, version, lambda: plugin)

    return register


def run_cli(*args: str, env_extra: dict[str, str] | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m maekit.cli ARGS`` in a fresh process with every ``MAEKIT_*`` variable of this one
    cleared (``env_extra`` sets them, e.g. ``{"MAEKIT_PLUGINS": "maekit-mine"}``); with ``check``,
    a non-zero exit fails the test showing the command's output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAEKIT_")}
    env.update(env_extra or {})
    result = subprocess.run([sys.executable, "-m", "maekit.cli", *args], capture_output=True, text=True, env=env,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result
