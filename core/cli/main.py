"""The ``maekit`` command.

Listing and introspection stay import-light (no torch unless a component must be imported);
commands that run models import torch when they start.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from maekit import __version__, plugins
from maekit.cli.support import USER_ERRORS, UserError, fail, user_message
from maekit.registry import KINDS, entries, registry_for

console = Console()


def _load(ctx: click.Context) -> plugins.PluginHost:
    """Load plugins once per invocation, with the files given by ``--plugin``."""
    obj = ctx.ensure_object(dict)
    if "host" not in obj:
        obj["host"] = plugins.load_plugins(files=obj.get("plugin_files", ()), strict=obj.get("strict"))
    return obj["host"]


class PluginCommandGroup(click.Group):
    """Core's commands plus those plugins add (hook ``maekit_commands``), found when asked for:
    plugins load only when a name is not core's or when help lists every command."""

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        if ctx.params.get("plugin_files"):  # else the plugins already loaded in this process
            ctx.ensure_object(dict).update(plugin_files=ctx.params["plugin_files"], strict=ctx.params.get("strict"))
            _load(ctx)
        try:
            found = plugins.commands()
        except plugins.PluginLoadError as error:
            fail(str(error))
        clashes = sorted(set(found) & set(self.commands))
        if clashes:
            fail(f"plugin command(s) {', '.join(clashes)} clash with maekit's own commands")
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.commands.get(name) or self._plugin_commands(ctx).get(name)

    def invoke(self, ctx: click.Context) -> Any:
        """Every command, core's or a plugin's: a user's mistake (a bad file, key or value, a full
        disk, a non-finite run) ends as one ``Error: ...`` line and exit code 1; ``--debug`` (or
        ``MAEKIT_DEBUG=1``) shows the traceback instead. Other exceptions are bugs: traceback."""
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except USER_ERRORS as error:
            if ctx.params.get("debug") or os.environ.get("MAEKIT_DEBUG", "") not in ("", "0"):
                raise
            raise UserError(user_message(error)) from error


@click.group(cls=PluginCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="maekit")
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(dir_okay=False),
              help="Load a single local .py file as a plugin (repeatable).")
@click.option("--strict/--no-strict", default=None, help="Re-raise the first plugin failure (MAEKIT_STRICT_PLUGINS).")
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of one 'Error:' line (MAEKIT_DEBUG=1).")
@click.pass_context
def main(ctx: click.Context, plugin_files: tuple[str, ...], strict: bool | None, debug: bool) -> None:
    """maekit: masked autoencoders across modalities, as plugins."""
    for path in plugin_files:
        if not Path(path).is_file():
            fail(f"--plugin {path}: no such file (expected a .py file with @maekit.hookimpl functions)")
    ctx.ensure_object(dict).update(plugin_files=plugin_files, strict=strict)


# -- list ------------------------------------------------------------------------------------
@main.command("list")
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
@click.option("--plugin", "plugin_name", help="Only components of this plugin (a .py path loads that file too).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, kind: str | None, plugin_name: str | None, as_json: bool) -> None:
    """List registered components and the plugins that failed to load."""
    if plugin_name and plugin_name.endswith(".py") and Path(plugin_name).is_file():
        ctx.obj["plugin_files"] = (*ctx.obj.get("plugin_files", ()), plugin_name)
        plugin_name = str(Path(plugin_name).resolve())
    host = _load(ctx)
    wanted = plugins.normalise_name(plugin_name) if plugin_name else None
    rows = [
        {"kind": e.kind, "name": e.name, "plugin": e.provider.name, "version": e.provider.version,
         "summary": e.one_line_summary()}
        for e in entries(kind)
        if wanted is None or plugins.normalise_name(e.provider.name) == wanted
    ]
    if wanted is not None and not any(plugins.normalise_name(r.name) == wanted for r in host.records):
        fail(f"--plugin {plugin_name}: no such plugin; known: {', '.join(r.name for r in host.records)}")
    plugin_rows = [r.as_dict() for r in host.records]
    if as_json:
        click.echo(json.dumps({"components": rows, "plugins": plugin_rows}, indent=2))
        return
    table = Table(title="maekit components")
    for column in ("kind", "name", "plugin", "version", "summary"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in ("kind", "name", "plugin", "version", "summary")))
    console.print(table)
    failed = [r for r in host.records if r.status == "failed"]
    if failed:
        problems = Table(title="plugins that failed to load", title_style="bold red")
        for column in ("name", "version", "error"):
            problems.add_column(column, overflow="fold")
        for record in failed:
            problems.add_row(record.name, record.version, record.error)
        console.print(problems)
    for record in host.records:
        if record.warning:
            console.print(f"[yellow]warning[/]: plugin {record.name}: {record.warning}")
    disabled = [r.name for r in host.records if r.status == "disabled"]
    if disabled:
        console.print(f"disabled plugins: {', '.join(disabled)}")


# -- info ------------------------------------------------------------------------------------
def describe(entry) -> dict[str, Any]:
    """Provider, signature, docstring and config keys of one entry (imports it)."""
    obj = entry.load()
    target = obj.__init__ if inspect.isclass(obj) else obj
    signature = inspect.signature(target)
    keys = {}
    for name, parameter in signature.parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = parameter.default
        keys[name] = "<required>" if default is parameter.empty else repr(default)
    shown = str(signature).replace("(self, ", "(").replace("(self)", "()")
    return {"kind": entry.kind, "name": entry.name, "plugin": entry.provider.name,
            "version": entry.provider.version, "object": f"{obj.__module__}.{obj.__qualname__}",
            "signature": f"{entry.name}{shown}", "doc": inspect.getdoc(obj) or "", "config_keys": keys}


@main.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), help="The kind, when several kinds use NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info(ctx: click.Context, name: str, kind: str | None, as_json: bool) -> None:
    """Show one component: provider, version, signature, docstring and config keys."""
    _load(ctx)
    kinds = [kind] if kind else [k for k in KINDS if name in registry_for(k).entries]
    if not kinds:
        try:
            registry_for("model").entry(name)  # raises the error that lists names and disabled providers
        except KeyError as error:
            others = {k: sorted(registry_for(k).entries) for k in KINDS}
            hint = "; ".join(f"{k}: {', '.join(v)}" for k, v in others.items() if v)
            fail(f"no component named {name!r} in any kind ({error}). Registered — {hint}")
    try:
        described = [describe(registry_for(k).entry(name)) for k in kinds]
    except KeyError as error:
        fail(str(error))
    if as_json:
        click.echo(json.dumps(described if len(described) > 1 else described[0], indent=2))
        return
    for item in described:
        console.rule(f"{item['kind']} {item['name']}")
        console.print(f"[bold]provided by[/] {item['plugin']} {item['version']}   ({item['object']})")
        console.print(f"[bold]signature[/] {item['signature']}", markup=True, highlight=False)
        console.print(item["doc"], markup=False)
        keys = Table(title="config keys")
        keys.add_column("key")
        keys.add_column("default")
        for key, default in item["config_keys"].items():
            keys.add_row(key, default)
        console.print(keys)


# -- doctor ----------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Versions, devices and plugin health; exits 1 when a plugin failed to load."""
    host = _load(ctx)
    versions = {"python": sys.version.split()[0], "maekit": __version__}
    for package in ("torch", "timm", "mmengine", "pluggy", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    import torch

    devices = {"cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
               "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
               "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}
    report = {"versions": versions, "devices": devices, "plugins": [r.as_dict() for r in host.records]}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for name, version in versions.items():
            console.print(f"{name:>10}  {version}")
        console.print(f"{'devices':>10}  cpu ({devices['cpu_threads']} threads)"
                      + "".join(f", cuda:{i} {n}" for i, n in enumerate(devices["cuda_devices"]))
                      + (", mps" if devices["mps"] else ""))
        for record in host.records:
            colour = {"loaded": "green", "failed": "red"}.get(record.status, "yellow")
            line = f"{'plugin':>10}  {record.name} {record.version} [{colour}]{record.status}[/]"
            console.print(line + (f": {record.error}" if record.error else ""), highlight=False)
    if any(r.status == "failed" for r in host.records):
        sys.exit(1)


# -- convert ---------------------------------------------------------------------------------
@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option("--from", "source_layout", default="auto", show_default=True,
              type=click.Choice(["auto", "maekit", "official", "transformers"]), help="Key layout of SOURCE.")
@click.option("--to", "target_layout", default="maekit", show_default=True,
              type=click.Choice(["maekit", "official", "timm", "transformers"]), help="Key layout to write.")
def convert(source: str, destination: str, source_layout: str, target_layout: str) -> None:
    """Convert an MAE checkpoint between key layouts (.safetensors or weights-only .pth out; an
    official-layout .pth is written as {"model": ...}, as the official scripts read it)."""
    from maekit.io.checkpoint import CheckpointError, load_state_dict, save_state_dict
    from maekit.io.convert import convert_state_dict, detect_layout

    try:
        state_dict = load_state_dict(source)
        detected = detect_layout(state_dict) if source_layout == "auto" else source_layout
        converted = convert_state_dict(state_dict, detected, target_layout)
        save_state_dict(converted, destination, wrap="model" if target_layout == "official" else None)
    except (CheckpointError, ValueError) as error:
        fail(str(error))
    click.echo(f"{source} ({detected}, {len(state_dict)} tensors) -> {destination} ({target_layout}, "
               f"{len(converted)} tensors)")


def _key_groups(keys: list[str]) -> str:
    """``encoder.blocks.0.attn.qkv.weight`` ... as ``encoder.blocks.* (N)`` groups, for messages."""
    groups: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        group = ".".join(parts[:2]) + (".*" if len(parts) > 2 else "")
        groups[group] = groups.get(group, 0) + 1
    return ", ".join(f"{group} ({count})" for group, count in sorted(groups.items()))


def _check_reconstruction_weights(checkpoint: str, state_dict: dict, model) -> None:
    """A reconstruction needs the decoder: say so for an encoder-only file, and group what is missing."""
    own = set(model.state_dict())
    missing = sorted(own - set(state_dict))
    if missing and not any(key.startswith("decoder.") for key in state_dict):
        raise ValueError(f"{checkpoint} has no decoder (an encoder-only checkpoint: {len(state_dict)} tensors); "
                         f"reconstruction needs one — give a pre-training checkpoint, or use maekit probe / export "
                         f"for the encoder. Missing: {_key_groups(missing)}")
    unexpected = sorted(set(state_dict) - own)
    if missing or unexpected:
        raise ValueError(f"{checkpoint} does not fit mae: missing {_key_groups(missing) or 'nothing'}; "
                         f"unexpected {_key_groups(unexpected) or 'nothing'}")


# -- forward ---------------------------------------------------------------------------------
@main.command()
@click.option("--image", type=click.Path(exists=True, dir_okay=False), help="An image file (anything Pillow reads).")
@click.option("--sample", default="astronaut", show_default=True, help="A bundled scikit-image photograph.")
@click.option("--size", "preset", default="base", show_default=True, help="mae size preset (tiny ... huge).")
@click.option("--img-size", default=224, show_default=True, help="Input resolution.")
@click.option("--mask-ratio", default=0.75, show_default=True)
@click.option("--checkpoint", type=click.Path(exists=True), help="Weights (any layout `maekit convert` reads).")
@click.option("--seed", default=0, show_default=True)
@click.pass_context
def forward(ctx: click.Context, image: str | None, sample: str, preset: str, img_size: int, mask_ratio: float,
            checkpoint: str | None, seed: int) -> None:
    """Run one MAE forward pass on a real image and print the loss."""
    _load(ctx)
    import numpy as np
    import torch

    from maekit.data.samples import sample_image, to_model_input
    from maekit.registry import build

    torch.manual_seed(seed)
    try:
        if image:
            from PIL import Image

            with Image.open(image) as handle:
                pixels = to_model_input(np.asarray(handle.convert("RGB")), img_size)
        else:
            pixels = sample_image(sample, img_size)
        model = build("model", dict(type="mae", size=preset, img_size=img_size, mask_ratio=mask_ratio)).eval()
        if checkpoint:
            from maekit.io.checkpoint import load_state_dict
            from maekit.io.convert import convert_state_dict, resize_pos_embeds

            state_dict = resize_pos_embeds(convert_state_dict(load_state_dict(checkpoint)), model)
            _check_reconstruction_weights(checkpoint, state_dict, model)
            model.load_state_dict(state_dict)
        with torch.no_grad():
            losses = model(pixels)
    except (ValueError, KeyError, RuntimeError, OSError) as error:
        fail(str(error))
    source = image or f"scikit-image sample '{sample}'"
    weights = checkpoint or "random init"
    click.echo(f"mae-{preset} ({weights}) on {source} at {img_size}px, mask {mask_ratio}: "
               + ", ".join(f"{k} {v.item():.4f}" for k, v in losses.items()))
