"""``maekit`` subcommands that train and evaluate: train, configs, probe, finetune, visualize,
export, demo. Each imports torch (and the engine) only when it runs."""
from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from maekit.cli.main import _load, console, main
from maekit.cli.support import cfg_options_option, default_work_dir, fail, finetune_and_report, load_command_config, write_metrics


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
@click.option("--launcher", type=click.Choice(["none", "pytorch"]), default="none", show_default=True,
              help="'pytorch' under torchrun for DDP (or FSDP with strategy='fsdp' in the config).")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the method's forward (opt-in).")
@click.pass_context
def train(ctx: click.Context, config: str, work_dir: str | None, resume: str | None, cfg_options: tuple[str, ...],
          more_cfg_options: tuple[str, ...], amp: str, device: str | None, seed: int | None, launcher: str,
          compile_model: bool) -> None:
    """Train CONFIG (a file, or a name from `maekit configs`) with mmengine's Runner."""
    _load(ctx)
    from maekit.engine import train as run_training

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    if compile_model:
        cfg.compile = cfg.get("compile") or True
    run_training(cfg, work_dir or default_work_dir(config), amp=amp, device=device, seed=seed, resume=resume,
                 launcher=launcher)


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


@main.command()
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True), help="Trained weights (default: random init).")
@click.option("--pool", type=click.Choice(["cls", "mean"]), default=None,
              help="Features to probe [the config's probe.pools first entry, else cls].")
@click.option("--k", default=20, show_default=True, help="Neighbours for k-NN.")
@click.option("--layer", type=int, default=None,
              help="Probe the layer-normed output of this encoder block (1..depth, negative from the end) "
                   "[the config's probe.layer, else the encoder's output].")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@click.option("--confusion", type=click.Path(dir_okay=False), help="Write the linear probe's confusion matrix as this PNG.")
@cfg_options_option
@click.pass_context
def probe(ctx: click.Context, config: str, checkpoint: str | None, pool: str | None, k: int, layer: int | None,
          out: str | None, confusion: str | None, cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Linear probe (logistic regression) and k-NN on frozen encoder features (of one block with --layer)."""
    _load(ctx)
    from maekit.data.views import evaluation_transform
    from maekit.eval.probe import load_trained_model
    from maekit.eval.probe import probe as run_probe
    from maekit.registry import build

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section = cfg.get("probe")
    if not section:
        fail(f"config {config} has no 'probe' section with 'train' and 'test' datasets")
    pool = pool or tuple(section.get("pools", ("cls",)))[0]
    train_set, test_set = build("dataset", section["train"]), build("dataset", section["test"])
    transform = evaluation_transform(train_set, (cfg.get("data") or {}).get("transform"), cfg.get("eval_transform"))
    model = load_trained_model(cfg.model, checkpoint)
    layer = section.get("layer") if layer is None else layer
    metrics = run_probe(model, train_set, test_set, transform, pool=pool, k=k, layer=layer, confusion=bool(confusion))
    if confusion:
        from maekit.eval.plots import confusion_matrix_png

        matrix = metrics.pop("confusion_matrix")
        classes = list(getattr(test_set, "classes", None) or range(len(matrix)))
        classes += [str(c) for c in range(len(classes), len(matrix))]  # labels beyond the named classes
        metrics["confusion_png"] = str(confusion_matrix_png(matrix, [str(c) for c in classes[:len(matrix)]], confusion,
                                                            title=f"linear probe ({pool} features): accuracy "
                                                                  f"{metrics['linear_probe_accuracy']:.3f}"))
    write_metrics({**metrics, "checkpoint": checkpoint, "pool": pool, "layer": layer}, out)


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
    finetune_and_report(load_command_config(config, cfg_options + more_cfg_options), config, checkpoint, work_dir, amp=amp,
                        device=device, seed=seed)


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--config", required=True, help="The config the checkpoint was trained with.")
@click.option("--out", default="reconstructions.png", show_default=True, type=click.Path(dir_okay=False))
@click.option("--num", default=8, show_default=True, help="How many images.")
@click.option("--seed", default=0, show_default=True, help="Seeds the masks.")
@click.option("--scale", type=int, default=None, help="Upscale factor of the PNG [the method's own, else 4].")
@click.pass_context
def visualize(ctx: click.Context, checkpoint: str, config: str, out: str, num: int, seed: int, scale: int | None) -> None:
    """Write a PNG grid: input | masked | reconstruction | reconstruction with visible patches."""
    _load(ctx)
    import torch

    from maekit.data.views import evaluation_transform
    from maekit.eval.probe import load_trained_model
    from maekit.eval.visualize import save_panels
    from maekit.registry import build

    cfg = load_command_config(config, ())
    data = cfg.get("data") or {}
    dataset = build("dataset", (cfg.get("probe") or {}).get("test") or data.get("dataset"))
    transform = evaluation_transform(dataset, data.get("transform"), cfg.get("eval_transform"))
    images = torch.stack([transform(dataset[i]["inputs"]) for i in range(min(num, len(dataset)))])
    model = load_trained_model(cfg.model, checkpoint)
    path = save_panels(model, images, getattr(transform, "mean", None), getattr(transform, "std", None), out, seed=seed,
                       scale=scale)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--config", required=True, help="The config the checkpoint was trained with.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for model.safetensors + config.json.")
@click.option("--format", "layout", type=click.Choice(["timm", "transformers"]), default="timm", show_default=True,
              help="timm: the encoder, for timm.create_model; transformers: the whole mae model, for "
                   "ViTMAEForPreTraining.from_pretrained(OUT) (or ViTMAEModel).")
@click.pass_context
def export(ctx: click.Context, checkpoint: str, config: str, out: str, layout: str) -> None:
    """Export a trained model: its encoder for timm, or (mae) the whole model for transformers."""
    _load(ctx)
    from maekit.eval.probe import load_trained_model
    from maekit.io.export import export_encoder, export_transformers

    cfg = load_command_config(config, ())
    write = export_transformers if layout == "transformers" else export_encoder
    weights, config_path = write(load_trained_model(cfg.model, checkpoint), out)
    click.echo(f"wrote {weights} and {config_path}")


@main.command()
@click.argument("name", default="mae")
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False))
@click.option("--iters", type=int, help="Pre-training iterations (default: the demo config's).")
@click.option("--seed", default=0, show_default=True)
@click.option("--config", help="Another config for the demo (e.g. a plugin's second encoder kind).")
@click.option("--list", "list_demos", is_flag=True, help="List the demos installed plugins offer.")
@click.pass_context
def demo(ctx: click.Context, name: str, out: str, iters: int | None, seed: int, config: str | None,
         list_demos: bool) -> None:
    """Pre-train NAME's demo (default: core MAE on bundled digits; CPU, minutes), evaluate it against
    random init, write OUT/metrics.json and a picture."""
    _load(ctx)
    from maekit.plugins import PluginLoadError, demos

    try:
        if list_demos:
            for demo_name, target in sorted(demos().items()):
                click.echo(f"{demo_name}\t{target}")
            return
        from maekit.eval.demo import run_named_demo

        metrics = run_named_demo(name, out, config=config, max_iters=iters, seed=seed, log=click.echo)
    except (ValueError, PluginLoadError) as error:
        fail(str(error))
    picture = metrics.get("reconstructions") or metrics.get("picture")  # a plugin's demo may draw something else
    click.echo(f"wrote {Path(out) / 'metrics.json'}" + (f" and {picture}" if picture else ""))


@main.command()
@click.argument("configs", nargs=-1, required=True)
@click.option("--data", default="fashion_mnist", show_default=True,
              help="fashion_mnist (Debian's IDX files), digits, or a folder of MNIST-family IDX files.")
@click.option("--iters", type=int, help="Pre-training iterations, the same for every method (or give --minutes).")
@click.option("--batch", type=int, help="Batch size for every method [the configs' own, when they agree].")
@click.option("--minutes", type=float, help="A wall-clock budget instead: each method gets the iterations that fit, "
                                            "from its speed measured here.")
@click.option("--seeds", default=1, show_default=True, help="Runs per method (seeds 0..K-1): mean ± std.")
@click.option("--eval-points", default=1, show_default=True,
              help="Evaluate after this many evenly spaced parts of the run (plus random init) for accuracy vs budget.")
@click.option("--probe-train-size", type=int, help="Probe on a seeded stratified share of the train split (IDX data).")
@click.option("--probe-test-size", type=int, help="Test the probe on a seeded stratified share of the test split (IDX data).")
@click.option("--finetune", "finetune_too", is_flag=True, help="Also fine-tune each final encoder (MAE's recipe).")
@click.option("--finetune-iters", default=300, show_default=True, help="Fine-tuning iterations, the same for every method.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where runs, compare.json/.md and plots go.")
@click.pass_context
def compare(ctx: click.Context, configs: tuple[str, ...], data: str, iters: int | None, batch: int | None,
            minutes: float | None, seeds: int, eval_points: int, probe_train_size: int | None, probe_test_size: int | None,
            finetune_too: bool, finetune_iters: int, device: str, out: str) -> None:
    """Which masked autoencoder for my data? Pre-train CONFIGS (names from `maekit configs`, or
    files) on the same data with the same budget and seeds, probe every encoder the same way, and
    write a ranked table and plots into OUT. Started again with the same arguments, it resumes."""
    _load(ctx)
    from maekit.eval.compare import CompareProgress, CompareSettings
    from maekit.eval.compare import compare as run_compare

    settings = CompareSettings(configs=list(configs), data=data, iters=iters, batch=batch, minutes=minutes, seeds=seeds,
                               eval_points=eval_points, probe_train_size=probe_train_size, probe_test_size=probe_test_size,
                               finetune=finetune_too, finetune_iters=finetune_iters, device=device)
    report = run_compare(settings, out, log=console.print, progress=CompareProgress(console))
    click.echo((Path(out) / "compare.md").read_text())
    click.echo(f"wrote {Path(out) / 'compare.json'}, compare.md and " + ", ".join(Path(p).name for p in report["pictures"].values()))


@main.command()
@click.argument("config")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The folder the shards go to (new or empty).")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Samples per shard.")
@click.option("--dataset-key", default="data.dataset", show_default=True,
              help="Which dataset of the config to write, e.g. probe.train.")
@cfg_options_option
@click.pass_context
def shards(ctx: click.Context, config: str, out: str, shard_size: int, dataset_key: str, cfg_options: tuple[str, ...],
           more_cfg_options: tuple[str, ...]) -> None:
    """Write a registered dataset of CONFIG (its training data by default) into WebDataset tar
    shards for streamed training (`dataset=dict(type="shards", shards=OUT)`): every sample as the
    dataset returns it, tensors as .npy, the label as .cls, strings as .txt; then OUT/index.json."""
    _load(ctx)
    import time

    from maekit.data.shards import INDEX_NAME, write_shards
    from maekit.registry import build

    if shard_size < 1:
        fail(f"--shard-size must be at least 1, got {shard_size}")
    cfg = load_command_config(config, cfg_options + more_cfg_options)
    node = cfg.to_dict()
    for part in dataset_key.split("."):
        if not isinstance(node, dict) or part not in node:
            fail(f"--dataset-key {dataset_key}: config {config} has no {part!r} there")
        node = node[part]
    if not isinstance(node, dict) or "type" not in node:
        fail(f"--dataset-key {dataset_key}: not a dataset config (a dict with a type), got {node!r}")
    target = Path(out)
    if target.is_dir() and (any(target.glob("*.tar")) or (target / INDEX_NAME).exists()):
        fail(f"--out {out}: already holds shards; give a new or empty folder")
    dataset = build("dataset", node)
    started = time.perf_counter()
    written = write_shards(dataset, target, shard_size,
                           progress=lambda done, total: console.print(f"{done}/{total} samples", highlight=False))
    size = sum(path.stat().st_size for path in written) / 2**20
    console.print(f"wrote {len(dataset)} samples into {len(written)} shards ({size:.1f} MiB) in "
                  f"{time.perf_counter() - started:.1f} s: {target}", highlight=False)
    click.echo(f'train on them with data.dataset = dict(_delete_=True, type="shards", shards="{target}")')
