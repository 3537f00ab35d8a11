"""The ``maekit`` command.

Listing and introspection stay import-light (no torch unless a component must be imported);
commands that run models import torch when they start.
"""
from __future__ import annotations

import inspect
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from maekit import __version__, plugins
from maekit.registry import KINDS, entries, registry_for

console = Console()


def _load(ctx: click.Context) -> plugins.PluginHost:
    """Load plugins once per invocation, with the files given by ``--plugin``."""
    obj = ctx.ensure_object(dict)
    if "host" not in obj:
        obj["host"] = plugins.load_plugins(files=obj.get("plugin_files", ()), strict=obj.get("strict"))
    return obj["host"]


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="maekit")
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(dir_okay=False),
              help="Load a single local .py file as a plugin (repeatable).")
@click.option("--strict/--no-strict", default=None, help="Re-raise the first plugin failure (MAEKIT_STRICT_PLUGINS).")
@click.pass_context
def main(ctx: click.Context, plugin_files: tuple[str, ...], strict: bool | None) -> None:
    """maekit: masked autoencoders across modalities, as plugins."""
    for path in plugin_files:
        if not Path(path).is_file():
            _fail(f"--plugin {path}: no such file (expected a .py file with @maekit.hookimpl functions)")
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
    wanted = plugins._normalise(plugin_name) if plugin_name else None
    rows = [
        {"kind": e.kind, "name": e.name, "plugin": e.provider.name, "version": e.provider.version,
         "summary": e.one_line_summary()}
        for e in entries(kind)
        if wanted is None or plugins._normalise(e.provider.name) == wanted
    ]
    if wanted is not None and not any(plugins._normalise(r.name) == wanted for r in host.records):
        _fail(f"--plugin {plugin_name}: no such plugin; known: {', '.join(r.name for r in host.records)}")
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
            _fail(f"no component named {name!r} in any kind ({error}). Registered — {hint}")
    try:
        described = [describe(registry_for(k).entry(name)) for k in kinds]
    except KeyError as error:
        _fail(str(error))
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
              type=click.Choice(["maekit", "official", "timm"]), help="Key layout to write.")
def convert(source: str, destination: str, source_layout: str, target_layout: str) -> None:
    """Convert an MAE checkpoint between key layouts (.safetensors or weights-only .pth out)."""
    from maekit.checkpoint import CheckpointError, load_state_dict, save_state_dict
    from maekit.convert import convert_state_dict, detect_layout

    try:
        state_dict = load_state_dict(source)
        detected = detect_layout(state_dict) if source_layout == "auto" else source_layout
        converted = convert_state_dict(state_dict, detected, target_layout)
        save_state_dict(converted, destination)
    except (CheckpointError, ValueError) as error:
        _fail(str(error))
    click.echo(f"{source} ({detected}, {len(state_dict)} tensors) -> {destination} ({target_layout}, "
               f"{len(converted)} tensors)")


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

    from maekit.registry import build
    from maekit.samples import sample_image, to_model_input

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
            from maekit.checkpoint import load_state_dict
            from maekit.convert import convert_state_dict, resize_pos_embeds

            state_dict = resize_pos_embeds(convert_state_dict(load_state_dict(checkpoint)), model)
            model.load_state_dict(state_dict)
    except (ValueError, KeyError, RuntimeError, OSError) as error:
        _fail(str(error))
    with torch.no_grad():
        losses = model(pixels)
    source = image or f"scikit-image sample '{sample}'"
    weights = checkpoint or "random init"
    click.echo(f"mae-{preset} ({weights}) on {source} at {img_size}px, mask {mask_ratio}: "
               + ", ".join(f"{k} {v.item():.4f}" for k, v in losses.items()))


# -- training and evaluation -------------------------------------------------------------------
def _parse_overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs (values as Python literals where they parse, else strings)."""
    import ast

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _fail(f"--cfg-options {pair!r}: expected key=value (e.g. schedule.max_iters=100)")
        try:
            overrides[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            overrides[key] = raw
    return overrides


def cfg_options_option(command):
    """``--cfg-options KEY=VALUE [KEY=VALUE ...]`` as mmengine spells it (also repeatable)."""
    command = click.argument("more_cfg_options", nargs=-1, metavar="[KEY=VALUE]...")(command)
    return click.option("--cfg-options", multiple=True, metavar="KEY=VALUE",
                        help="Override config keys, e.g. --cfg-options schedule.max_iters=100 data.batch_size=32.")(command)


def _config(config: str, cfg_options: tuple[str, ...]):
    from maekit.engine import load_config

    try:
        return load_config(config, _parse_overrides(cfg_options))
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))


def _default_work_dir(config: str) -> str:
    return str(Path("work_dirs") / Path(config).stem)


@main.command()
@click.argument("config")
@click.option("--work-dir", help="Where checkpoints and logs go [work_dirs/<config name>].")
@click.option("--resume", is_flag=False, flag_value="auto", default=None,
              help="Resume: 'auto' (the latest checkpoint in the work dir, the default with no value) or a PATH.")
@cfg_options_option
@click.option("--amp", type=click.Choice(["bf16", "fp16", "off"]), default="off", show_default=True,
              help="Mixed precision: bf16 autocast (CPU and GPU) or fp16 with loss scaling (GPU).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Force a device (default: CUDA when present).")
@click.option("--seed", type=int, help="Random seed (default: the config's).")
@click.option("--launcher", type=click.Choice(["none", "pytorch", "slurm", "mpi"]), default="none", show_default=True,
              help="'pytorch' under torchrun for DDP (or FSDP with strategy='fsdp' in the config).")
@click.pass_context
def train(ctx: click.Context, config: str, work_dir: str | None, resume: str | None, cfg_options: tuple[str, ...],
          more_cfg_options: tuple[str, ...], amp: str, device: str | None, seed: int | None, launcher: str) -> None:
    """Train CONFIG (a file, or a name from `maekit configs`) with mmengine's Runner."""
    _load(ctx)
    from maekit.engine import train as run_training

    cfg = _config(config, cfg_options + more_cfg_options)
    try:
        run_training(cfg, work_dir or _default_work_dir(config), amp=amp, device=device, seed=seed, resume=resume,
                     launcher=launcher)
    except FloatingPointError as error:
        _fail(f"{error} (work dir: {work_dir or _default_work_dir(config)})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def configs(ctx: click.Context, as_json: bool) -> None:
    """List the configs that core and plugins contribute."""
    _load(ctx)
    from maekit.configs import available_configs

    found = {name: str(path) for name, path in available_configs().items()}
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table(title="maekit configs")
    table.add_column("name")
    table.add_column("file", overflow="fold")
    for name, path in found.items():
        table.add_row(name, path)
    console.print(table)


def _write_metrics(metrics: dict[str, Any], out: str | None) -> None:
    text = json.dumps(metrics, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    click.echo(text)


@main.command()
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True), help="Trained weights (default: random init).")
@click.option("--pool", type=click.Choice(["cls", "mean"]), default="cls", show_default=True)
@click.option("--k", default=20, show_default=True, help="Neighbours for k-NN.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
@click.pass_context
def probe(ctx: click.Context, config: str, checkpoint: str | None, pool: str, k: int, out: str | None,
          cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Linear probe (logistic regression) and k-NN on frozen encoder features."""
    _load(ctx)
    from maekit.data.views import EvalTransform, default_mean_std
    from maekit.evaluation import load_trained_model
    from maekit.evaluation import probe as run_probe
    from maekit.registry import build

    cfg = _config(config, cfg_options + more_cfg_options)
    section = cfg.get("probe")
    if not section:
        _fail(f"config {config} has no 'probe' section with 'train' and 'test' datasets")
    try:
        train_set, test_set = build("dataset", section["train"]), build("dataset", section["test"])
        sample = train_set[0]["inputs"]
        transform = EvalTransform(tuple(sample.shape[-2:]), *default_mean_std(sample.shape[0]))
        model = load_trained_model(cfg.model, checkpoint)
        metrics = run_probe(model, train_set, test_set, transform, pool=pool, k=k)
    except (ValueError, KeyError, RuntimeError) as error:
        _fail(str(error))
    _write_metrics({**metrics, "checkpoint": checkpoint, "pool": pool}, out)


@main.command()
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True), help="Pre-trained weights (default: random init).")
@click.option("--work-dir", help="Where checkpoints, logs and metrics.json go.")
@cfg_options_option
@click.option("--amp", type=click.Choice(["bf16", "fp16", "off"]), default="off", show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]))
@click.option("--seed", type=int)
@click.pass_context
def finetune(ctx: click.Context, config: str, checkpoint: str | None, work_dir: str | None,
             cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...], amp: str, device: str | None,
             seed: int | None) -> None:
    """Fine-tune the encoder with MAE's head and layer-wise lr decay; report top-1 accuracy."""
    _load(ctx)
    from maekit.finetune import run_finetune

    cfg = _config(config, cfg_options + more_cfg_options)
    try:
        metrics = run_finetune(cfg, checkpoint, work_dir or _default_work_dir(config) + "_finetune",
                               amp=amp, device=device, seed=seed)
    except (ValueError, FloatingPointError) as error:
        _fail(str(error))
    _write_metrics(metrics, None)


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--config", required=True, help="The config the checkpoint was trained with.")
@click.option("--out", default="reconstructions.png", show_default=True, type=click.Path(dir_okay=False))
@click.option("--num", default=8, show_default=True, help="How many images.")
@click.option("--seed", default=0, show_default=True, help="Seeds the masks.")
@click.option("--scale", default=4, show_default=True, help="Upscale factor of the PNG.")
@click.pass_context
def visualize(ctx: click.Context, checkpoint: str, config: str, out: str, num: int, seed: int, scale: int) -> None:
    """Write a PNG grid: input | masked | reconstruction | reconstruction with visible patches."""
    _load(ctx)
    import torch

    from maekit.data.views import EvalTransform, default_mean_std
    from maekit.evaluation import load_trained_model
    from maekit.registry import build
    from maekit.visualize import reconstruction_panels, save_grid

    cfg = _config(config, ())
    try:
        dataset = build("dataset", (cfg.get("probe") or {}).get("test", cfg.data["dataset"]))
        sample = dataset[0]["inputs"]
        mean, std = default_mean_std(sample.shape[0])
        transform = EvalTransform(tuple(sample.shape[-2:]), mean, std)
        images = torch.stack([transform(dataset[i]["inputs"]) for i in range(min(num, len(dataset)))])
        model = load_trained_model(cfg.model, checkpoint)
        noise = torch.rand(len(images), model.tokenize(images).num_tokens, generator=torch.Generator().manual_seed(seed))
        path = save_grid(reconstruction_panels(model, images, mean, std, noise=noise), out, scale=scale)
    except (ValueError, KeyError, RuntimeError) as error:
        _fail(str(error))
    click.echo(f"wrote {path}")


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--config", required=True, help="The config the checkpoint was trained with.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for model.safetensors + config.json.")
@click.pass_context
def export(ctx: click.Context, checkpoint: str, config: str, out: str) -> None:
    """Export the encoder as safetensors + config JSON that timm loads."""
    _load(ctx)
    from maekit.evaluation import load_trained_model
    from maekit.export import export_encoder

    cfg = _config(config, ())
    try:
        weights, config_path = export_encoder(load_trained_model(cfg.model, checkpoint), out)
    except (ValueError, KeyError, RuntimeError) as error:
        _fail(str(error))
    click.echo(f"wrote {weights} and {config_path}")


@main.command()
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False))
@click.option("--iters", type=int, help="Pre-training iterations (default: the demo config's).")
@click.option("--seed", default=0, show_default=True)
@click.option("--config", default="mae_demo_digits", show_default=True, help="The demo config.")
@click.pass_context
def demo(ctx: click.Context, out: str, iters: int | None, seed: int, config: str) -> None:
    """Pre-train a small MAE on bundled digits (CPU, minutes), probe it vs random init, write OUT/metrics.json."""
    _load(ctx)
    from maekit.demo import run_demo

    metrics = run_demo(out, config=config, max_iters=iters, seed=seed, log=click.echo)
    click.echo(f"wrote {Path(out) / 'metrics.json'} and {metrics['reconstructions']}")


if __name__ == "__main__":  # pragma: no cover
    main()
