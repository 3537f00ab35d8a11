"""The extension points of maekit: every hook a plugin may implement.

A plugin is a module (named by an entry point in the group ``maekit``, or a single local ``.py``
file passed with ``--plugin``) whose functions are marked ``@maekit.hookimpl`` and named after the
specifications below. These specifications are the plugin API's documentation.

Keep a plugin's hook module light: register components by dotted path
(``"maekit_mine.model:MyEncoder"``) so that ``maekit list`` need not import torch.

Each spec says how maekit calls it (*Called*) and what happens when two plugins answer alike
(*Clash*). None is ``firstresult``: every plugin's answer counts. A module function named
``maekit_*`` that is none of these specs is reported by ``maekit check-plugin`` (an error) and
when the plugin loads (a warning in ``maekit list``): maekit would never call it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import pluggy

if TYPE_CHECKING:
    from maekit.plugins import Registrar

__all__ = ["hookspec", "hookimpl", "standard_hooks", "maekit_register", "maekit_config_dirs", "maekit_sample_data", "maekit_demos",
           "maekit_commands", "maekit_config_keys"]

hookspec = pluggy.HookspecMarker("maekit")
hookimpl = pluggy.HookimplMarker("maekit")


@hookspec
def maekit_register(registry: "Registrar") -> None:
    """Register this plugin's components.

    Call ``registry.register(kind, target, name=None, summary="")`` once per component (or
    ``registry.register_all(rows)`` with ``(kind, name, target)`` rows), where
    ``kind`` is one of ``maekit.registry.KINDS`` (model, patchifier, masker, encoder, decoder,
    target, loss, teacher, tokenizer, dataset, transform) and ``target`` is the class/function or its lazy dotted path
    ``"package.module:Name"``. A name another plugin already registered in that kind is an error
    that names both plugins; the plugin is then reported as failed and none of its components
    stay registered.

    *Called* once per plugin, right after it is imported, with a registrar bound to that plugin
    (so each entry records its provider). *Clash*: the later plugin (plugins load in name order)
    fails as a whole.
    """


@hookspec
def maekit_config_dirs() -> list[str | Path]:
    """Folders holding this plugin's config files (``*.py``); ``maekit configs`` lists them.

    *Called* through pluggy's combined hook whenever configs are looked up; answers are merged,
    core's first, then plugins in load order. *Clash*: a config name in two folders resolves to
    the first (core's before any plugin's); files starting with ``_`` are bases, not listed.
    """


@hookspec
def maekit_config_keys() -> dict[str, list[str] | None]:
    """Config sections (top-level keys) this plugin's configs and commands use, each with the keys
    it takes (``None``: any keys), e.g. ``{"svm": ["train", "test", "c"]}``; keys listed for one of
    core's sections (``probe``, ``finetune``...) are added to it. A config with a key no one
    declared is an error naming it and the nearest known key.

    *Called* through the combined hook when a config is loaded; answers are merged. *Clash*: two
    plugins declaring one section get the union of their keys (``None`` wins).
    """


@hookspec
def maekit_sample_data() -> dict[str, Callable[[], object]]:
    """Named loaders of sample data bundled with this plugin or with a package it depends on.

    *Called* through the combined hook; answers are merged into one mapping. *Clash*: for one name
    the later-loaded plugin's loader wins.
    """


@hookspec
def maekit_demos() -> dict[str, str]:
    """Demos this plugin offers to ``maekit demo NAME``: name → a config name (run by core's
    generic demo: pre-train, probe against random init, picture via the model's ``panels``) or a
    ``"package.module:function"`` with the signature of :func:`maekit.eval.demo.run_demo`.

    *Called* per plugin when ``maekit demo`` runs; answers are merged. *Clash*: one demo name
    offered by two plugins is an error naming both.
    """


@hookspec
def maekit_commands() -> list:
    """Subcommands this plugin adds to ``maekit`` (``click.Command`` objects, e.g. an evaluation
    the method's paper uses). Import torch inside the command's function, not at module level,
    so ``maekit --help`` and ``maekit list`` stay fast. Plugin commands use the public helpers of
    :mod:`maekit.cli.support` (errors, configs, metrics, checkpoints).

    *Called* per plugin, only when a command name is not core's or help lists every command;
    answers are merged. *Clash*: a name another plugin or core already uses is an error naming both.
    """


def standard_hooks(components: Iterable[tuple[str, str, object]], config_dir: str | Path | None = None,
                   demos: Mapping[str, str] | None = None, commands: Iterable[str] = ()) -> tuple[Callable, ...]:
    """The four hooks most plugins implement, made from data. A plugin's hook module unpacks them
    under their hook names (pluggy finds hooks by the module attribute's name)::

        maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
            COMPONENTS, config_dir=Path(__file__).parent / "configs",
            demos={"mine": "maekit_mine.demo:run_demo"}, commands=["maekit_mine.cli:mine_eval"])

    ``components``: ``(kind, name, target)`` rows for :func:`maekit_register`; ``commands``:
    ``"package.module:command"`` paths of click commands, imported only when maekit asks for its
    subcommands, so listing components stays free of the plugin's modules.
    """
    rows = list(components)
    config_dirs = [Path(config_dir)] if config_dir is not None else []
    offered_demos, command_paths = dict(demos or {}), list(commands)

    @hookimpl
    def maekit_register(registry: "Registrar") -> None:
        registry.register_all(rows)

    @hookimpl
    def maekit_config_dirs() -> list[Path]:
        return list(config_dirs)

    @hookimpl
    def maekit_demos() -> dict[str, str]:
        return dict(offered_demos)

    @hookimpl
    def maekit_commands() -> list:
        from maekit.registry import import_target

        return [import_target(path) for path in command_paths]

    return maekit_register, maekit_config_dirs, maekit_demos, maekit_commands
