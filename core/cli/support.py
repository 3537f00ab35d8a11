"""The public API for a plugin's own commands (hook ``maekit_commands``): everything a command
needs from core, under names that stay. A plugin's ``cli.py`` imports from here and nowhere else
in ``maekit.cli``.

- :func:`fail` / :class:`UserError`: a user's mistake, printed as one ``Error: ...`` line, exit 1.
- :func:`cfg_options_option`, :func:`load_command_config`: ``--cfg-options key=value`` overrides and
  a config loaded by name or path, failing clearly.
- :func:`default_work_dir`, :func:`write_metrics`: where runs go; metrics printed and written.
- :func:`finetune_and_report`, :func:`frozen_evaluation`: the bodies of evaluation commands.
- :func:`load_state_dict`, :class:`CheckpointError`: reading weights (never runs pickled code).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

import click

from maekit.io.checkpoint import CheckpointError, load_state_dict, write_bytes

__all__ = ["UserError", "USER_ERRORS", "user_message", "fail", "parse_overrides", "cfg_options_option", "load_command_config", "default_work_dir",
           "write_metrics", "finetune_and_report", "frozen_evaluation", "load_state_dict", "CheckpointError", "choose_device"]

Command = TypeVar("Command", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A mistake in what the user gave (a file, a key, a value): one ``Error: ...`` line, exit code 1."""


#: Exceptions a command turns into one ``Error:`` line (``maekit --debug`` shows the traceback):
#: bad values and keys (ValueError, TypeError from a component's arguments, KeyError for unknown
#: names), files (OSError: missing, unreadable, read-only, disk full), checkpoints refused, and a
#: run stopped by the non-finite guard. maekit's own errors name the file, key or value.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError, OSError, FloatingPointError,
                                                 CheckpointError)


def user_message(error: BaseException) -> str:
    """One line for ``error``: its message (a KeyError's without repr quotes), its type when the
    message does not say what went wrong, and where to get the traceback."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:  # re-raised from a DataLoader worker
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if last.startswith(f"{type(error).__name__}: ") else last
    text = " ".join(text.split()) or type(error).__name__
    # the type where the message alone would not say what happened (a bare KeyError: 'label');
    # maekit's own KeyErrors (unknown or duplicate component names) speak for themselves
    if type(error) in (KeyError, TypeError) or (isinstance(error, OSError) and type(error).__name__ not in text):
        text = f"{type(error).__name__}: {text}"
    return f"{text} (maekit --debug ... shows the traceback)"


def fail(message: str) -> NoReturn:
    """Stop the command with ``Error: message`` (name the file, key or value and what was expected)."""
    raise UserError(message)


def choose_device(device: str | None) -> Any:
    """The torch device a command's ``--device`` names (default: CUDA when torch sees one, else
    the CPU); a ValueError naming it when it asks for CUDA that this torch cannot use."""
    import torch

    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this torch sees no CUDA device (use --device cpu)")
    return chosen


def parse_overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs (values as Python literals where they parse, else strings)."""
    import ast

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--cfg-options {pair!r}: expected key=value (e.g. schedule.max_iters=100)")
        try:
            overrides[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            overrides[key] = raw
    return overrides


def cfg_options_option(command: Command) -> Command:
    """``--cfg-options KEY=VALUE [KEY=VALUE ...]`` as mmengine spells it (also repeatable); the
    command receives ``cfg_options`` and ``more_cfg_options``."""
    command = click.argument("more_cfg_options", nargs=-1, metavar="[KEY=VALUE]...")(command)
    return click.option("--cfg-options", multiple=True, metavar="KEY=VALUE",
                        help="Override config keys, e.g. --cfg-options schedule.max_iters=100 data.batch_size=32.")(command)


def load_command_config(config: str, cfg_options: tuple[str, ...]) -> Any:
    """A config by registered name or path with ``key=value`` overrides, or a clear failure."""
    from maekit.engine import load_config

    try:
        return load_config(config, parse_overrides(cfg_options))
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))


def default_work_dir(config: str) -> str:
    """``work_dirs/<config name>``."""
    return str(Path("work_dirs") / Path(config).stem)


def write_metrics(metrics: dict[str, Any], out: str | None) -> None:
    """Print ``metrics`` as JSON and, with ``out``, write them there (atomically)."""
    text = json.dumps(metrics, indent=2)
    if out:
        write_bytes(out, text.encode())
    click.echo(text)


def finetune_and_report(cfg, config: str, checkpoint: str | None, work_dir: str | None, out: str | None = None,
                        **options: Any) -> None:
    """The body of a fine-tuning command (core's and plugins' ``--protocol finetune``): run the
    config's ``finetune`` section, print (and with ``out`` write) the metrics, or fail clearly."""
    from maekit.eval.finetune import run_finetune

    try:
        metrics = run_finetune(cfg, checkpoint, work_dir or default_work_dir(config) + "_finetune", **options)
    except KeyError as error:
        fail(f"config {config}: the finetune section lacks {error} (num_classes, data, test, schedule)")
    write_metrics({**metrics, "protocol": "finetune"}, out)


def frozen_evaluation(cfg, config: str, section_name: str, checkpoint: str | None, out: str | None, evaluate: Any,
                      protocol: str) -> None:
    """The body of a plugin's frozen-feature evaluation command: build the config's ``section_name``
    train/test datasets and the model (``checkpoint`` or random init), call ``evaluate(model,
    train_set, test_set, transform, section)`` for a metrics dict, print and write it."""
    from maekit.data.views import evaluation_transform
    from maekit.eval.probe import load_trained_model
    from maekit.registry import build

    section = cfg.get(section_name)
    if not section or "train" not in section or "test" not in section:
        fail(f"config {config} has no '{section_name}' section with 'train' and 'test' datasets")
    train_set, test_set = build("dataset", section["train"]), build("dataset", section["test"])
    transform = evaluation_transform(train_set, None, cfg.get("eval_transform"))
    model = load_trained_model(cfg.model, checkpoint)
    metrics = evaluate(model, train_set, test_set, transform, section)
    write_metrics({**metrics, "protocol": protocol, "checkpoint": checkpoint}, out)


