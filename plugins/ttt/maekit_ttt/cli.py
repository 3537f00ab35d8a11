"""``maekit ttt-probe`` (TTT-MAE's classifier on the frozen pre-trained encoder) and ``maekit
ttt-eval`` (accuracy per corruption and severity, before and after test-time training)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, choose_device, default_work_dir, fail, load_command_config, write_metrics

__all__ = ["ttt_probe", "ttt_eval"]


@click.command("ttt-probe")
@click.argument("config")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The pre-trained MAE with its decoder (maekit train's checkpoint).")
@click.option("--work-dir", help="Checkpoints and logs (default work_dirs/<config>_probe).")
@click.option("--seed", type=int, help="Seed (default: the config's).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Force a device (default: CUDA when present).")
@click.option("--launcher", type=click.Choice(["none", "pytorch"]), default="none", show_default=True,
              help="pytorch: one process per GPU under torchrun, as maekit train.")
@cfg_options_option
def ttt_probe(config: str, checkpoint: str, work_dir: str | None, seed: int | None, device: str | None, launcher: str,
              cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Train TTT-MAE's classifier (the config's ``ttt_probe`` section: data, schedule) on every token of
    the frozen encoder. The checkpoint it writes holds encoder, decoder and classifier: ttt-eval's input."""
    from maekit_ttt.evaluate import run_probe_stage

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    try:
        final = run_probe_stage(cfg, checkpoint, work_dir or default_work_dir(config) + "_probe", seed, device, launcher)
    except ValueError as error:
        fail(str(error))
    click.echo(f"probe stage done: {final}")


@click.command("ttt-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="Trained weights: ttt-probe's checkpoint (TTT-MAE) or maekit train's (TTT).")
@click.option("--corruption", "corruptions", multiple=True, help="Only these corruptions (repeatable; default: the config's).")
@click.option("--severity", "severities", multiple=True, type=click.IntRange(1, 5), help="Only these severities (repeatable).")
@click.option("--corrupted-root", type=click.Path(exists=True, file_okay=False),
              help="An already corrupted folder, ImageNet-C's layout <root>/<corruption>/<severity>/<class>/<image>.")
@click.option("--limit", type=click.IntRange(min=1), help="N images of each condition, spread evenly over it.")
@click.option("--steps", type=click.IntRange(min=0), help="Test-time steps (default: the config's ttt.steps).")
@click.option("--reset", type=click.Choice(["episodic", "online"]), help="Reset per image (episodic) or not (online).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Force a device (default: CUDA when present).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the metrics JSON here too (rewritten after every condition: a stopped run keeps what it measured).")
@cfg_options_option
def ttt_eval(config: str, checkpoint: str | None, corruptions: tuple[str, ...], severities: tuple[int, ...],
             corrupted_root: str | None, limit: int | None, steps: int | None, reset: str | None, device: str | None,
             out: str | None, cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Accuracy per corruption and severity without adaptation and after every test-time step (the
    config's ``ttt`` section: steps, copies, lr, optimizer, momentum, trainable, reset...), and the
    self-supervised loss per step."""
    from maekit.data.views import evaluation_transform
    from maekit.eval.test_time import TestTimeSettings
    from maekit.registry import build
    from maekit_ttt.evaluate import eval_options, evaluate_under_corruptions, load_for_test_time

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    try:
        section = dict(cfg.get("ttt_eval") or {})
        if corrupted_root:
            # a config written for on-the-fly corruptions lists what it makes; a folder's config (the
            # ImageNet one: the paper's 15 at severity 5) lists what to read from it, and is kept
            listed_for_folder = "corrupted_root" in section
            for key in ("test",) if listed_for_folder else ("test", "corruptions", "severities"):
                section.pop(key, None)
            section["corrupted_root"] = corrupted_root
        section.update({k: v for k, v in (("corruptions", list(corruptions)), ("severities", list(severities)),
                                          ("limit", limit)) if v})
        options = eval_options(section)
        if "corrupted_root" in options:
            options.setdefault("channels", int(cfg.model.get("in_chans", 3)))
        choose_device(device)  # a ValueError (one Error: line) when it names CUDA this torch cannot use
        settings = TestTimeSettings.from_config({**(cfg.get("ttt") or {}), **({"steps": steps} if steps is not None else {}),
                                                 **({"reset": reset} if reset else {})})
        model = load_for_test_time(cfg.model, checkpoint)
        reference = build("dataset", options["test"]) if "test" in options else None
        transform = evaluation_transform(reference, cfg.data.get("transform"), cfg.get("eval_transform")) \
            if reference is not None else evaluation_transform_for_folder(cfg)
        about = {"checkpoint": checkpoint or cfg.model.get("checkpoint"), "config": config}
        metrics = evaluate_under_corruptions(model, options, settings, transform, log=click.echo, device=device,
                                             num_classes=cfg.model.get("num_classes"), partial=out, about=about)
    except ValueError as error:
        fail(str(error))
    write_metrics(metrics, out)


def evaluation_transform_for_folder(cfg):
    """The config's ``eval_transform`` (the ImageNet config's Resize 256 + CenterCrop 224), else a
    resize to the training size and normalisation, for images read from a corrupted folder."""
    from maekit.data.views import EvalTransform, default_mean_std
    from maekit.registry import build

    if cfg.get("eval_transform"):
        return build("transform", cfg.eval_transform)
    train = dict(cfg.data.get("transform") or {})
    channels = int(cfg.model.get("in_chans", 3))
    mean, std = default_mean_std(channels)
    return EvalTransform(train.get("size", cfg.model.get("img_size", 224)), train.get("mean") or mean, train.get("std") or std)
