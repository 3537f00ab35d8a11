"""pytest fixtures for maekit and its plugin authors (loaded by pytest through the ``pytest11`` entry point).

- ``fresh_registries``: empty registries and a clean plugin host for one test; everything that was
  registered before is restored afterwards.
- ``plugin_host``: ``fresh_registries`` with core's components loaded (no installed plugins).
- ``register_plugin``: a helper that registers a throwaway plugin (any object or module with
  ``@maekit.hookimpl`` functions) under a name and version, and returns its record.

And :func:`run_cli`, which runs the ``maekit`` command in a fresh process (real entry-point discovery),
two checks every plugin's own tests make: :func:`check_registers_only_its_names` and
:func:`check_listed_alone`; :func:`interrupt_after`, a crash in the middle of training for
resume tests, and the runs behind the two equivalence checks every trainer owes:
:func:`straight_and_resumed` and :func:`one_and_two_processes`; :func:`free_port` for a test's own
process group.
"""
from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

import pytest

from maekit import plugins
from maekit.hookspecs import hookimpl
from maekit.registry import KINDS, registry_for


@pytest.fixture
def fresh_registries() -> Iterator[plugins.PluginHost]:
    saved = {kind: dict(registry_for(kind).entries) for kind in KINDS}
    saved_host = plugins.current_host()
    for kind in KINDS:
        registry_for(kind).entries.clear()
    host = plugins.PluginHost(strict=False)
    plugins.set_host(host)
    try:
        yield host
    finally:
        for kind, entries in saved.items():
            registry_for(kind).entries.clear()
            registry_for(kind).entries.update(entries)
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


def check_registers_only_its_names(host: plugins.PluginHost, distribution: str, version: str, plugin: ModuleType,
                                   prefixes: tuple[str, ...], commands: Iterable[str] = ()) -> None:
    """Load ``plugin`` (its module with ``COMPONENTS`` rows) into a ``fresh_registries`` host: it
    must register exactly its rows, under its name, every name starting with one of ``prefixes``,
    each resolving to a documented object, and offer exactly ``commands``."""
    record = host.load(distribution, version, lambda: plugin)
    assert record.status == "loaded", record.error
    registered = {(kind, entry.name, entry.provider.name) for kind in KINDS for entry in registry_for(kind).entries.values()}
    assert registered == {(kind, name, distribution) for kind, name, _ in plugin.COMPONENTS}
    assert all(name.startswith(prefixes) for _, name, _ in registered), sorted(registered)
    for kind, name, _ in plugin.COMPONENTS:  # every lazy path resolves to a documented object
        target = registry_for(kind).get(name)
        assert target is not None and (target.__doc__ or "").strip(), f"{kind} {name} needs a docstring"
    offered = plugin.maekit_commands() if hasattr(plugin, "maekit_commands") else []
    assert {command.name for command in offered} == set(commands)


def check_listed_alone(distribution: str, version: str, plugin: ModuleType, configs: Iterable[str] = (),
                       demo: str | None = None, commands: Iterable[str] = ()) -> None:
    """With only this plugin enabled, ``maekit list --plugin`` shows exactly its components with its
    version, ``maekit configs`` its ``configs``, ``maekit demo --list`` its ``demo`` line
    ("name\\ttarget") and ``maekit --help`` its ``commands``."""
    import json

    def maekit(*args: str) -> str:
        return run_cli(*args, env_extra={"MAEKIT_PLUGINS": distribution}).stdout

    listing = json.loads(maekit("list", "--plugin", distribution, "--json"))
    rows = {(c["kind"], c["name"]): c for c in listing["components"]}
    assert set(rows) == {(kind, name) for kind, name, _ in plugin.COMPONENTS}
    assert {c["version"] for c in rows.values()} == {version}
    assert set(configs) <= set(json.loads(maekit("configs", "--json")))
    if demo is not None:
        assert demo in maekit("demo", "--list")
    help_text = maekit("--help")
    assert all(command in help_text for command in commands)


class Interrupted(Exception):
    """Raised by the hook :func:`interrupt_after` puts into a run."""


def interrupt_after(iteration: int) -> dict:
    """A ``custom_hooks`` entry that stops training with :class:`Interrupted` right after
    ``iteration`` (1-based) has been checkpointed: a crash in the middle of a run, for tests that
    resume it (``train(..., overrides={"custom_hooks": [interrupt_after(3)]})``)."""
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    class InterruptAfterIter(Hook):
        priority = "LOWEST"  # after the checkpoint hook has saved

        def __init__(self, iteration: int) -> None:
            self.iteration = iteration

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            if runner.iter + 1 == self.iteration:
                raise Interrupted(f"interrupted after iteration {self.iteration}")

    HOOKS.register_module(name="MaekitTestInterrupt", module=InterruptAfterIter, force=True)
    return dict(type="MaekitTestInterrupt", iteration=iteration)


def straight_and_resumed(config: Any, work_root: Any, iters: int, interrupt_at: int) -> tuple[dict, dict]:
    """Train ``config`` for ``iters`` iterations straight, then again interrupted after
    ``interrupt_at`` (which must be a checkpoint iteration) and resumed; the two final
    checkpoints' state dicts, which a correct resume makes bit-identical."""
    from pathlib import Path

    from maekit.engine import train
    from maekit.io.checkpoint import load_state_dict

    root = Path(work_root)
    train(config, root / "straight", device="cpu")
    with pytest.raises(Interrupted):
        train(config, root / "resumed", device="cpu", overrides={"custom_hooks": [interrupt_after(interrupt_at)]})
    # the interruption left a checkpoint to resume from and nothing later (else "resume" trains afresh)
    assert (root / "resumed" / f"iter_{interrupt_at}.pth").is_file(), f"no checkpoint at iteration {interrupt_at}"
    assert not (root / "resumed" / f"iter_{iters}.pth").exists()
    train(config, root / "resumed", device="cpu", resume="auto")
    return load_state_dict(root / "straight" / f"iter_{iters}.pth"), load_state_dict(root / "resumed" / f"iter_{iters}.pth")


def one_and_two_processes(one: Any, two: Any, work_root: Any, iters: int, port: int | None = None) -> tuple[dict, dict]:
    """Train config ``one`` in one process and ``two`` (half the batch) in two DDP processes on CPU
    (``torch.distributed.run``, gloo); the final checkpoints' state dicts."""
    from pathlib import Path

    from maekit.io.checkpoint import load_state_dict

    root = Path(work_root)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "maekit.cli", "train", str(one), "--work-dir", str(root / "w1"), "--device", "cpu"]
    double = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
              str(port or free_port()), "-m", "maekit.cli", "train", str(two), "--work-dir", str(root / "w2"),
              "--device", "cpu", "--launcher", "pytorch"]
    for command in (single, double):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return load_state_dict(root / "w1" / f"iter_{iters}.pth"), load_state_dict(root / "w2" / f"iter_{iters}.pth")


def free_port() -> int:
    """A TCP port free on this machine now (for a test's own process group)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
