"""``maekit av-eval``: audio-visual classification (probe, k-NN, fine-tuning; joint and each
modality alone) and audio↔video retrieval of an AV-MAE / MAViL model from the command line."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, choose_device, fail, load_command_config, write_metrics

__all__ = ["av_eval"]


@click.command("av-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="Trained weights (a maekit train checkpoint or maekit weights; default: random init).")
@click.option("--finetune-iters", type=click.IntRange(min=0), default=None,
              help="Fine-tune for this many steps per run (default: the config's av_eval.finetune.iters; 0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fine-tuning's order and clips.")
@click.option("--device", default=None, help="Where to run: cpu, cuda, cuda:1 ... [default: cuda when available, else cpu]")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def av_eval(config: str, checkpoint: str | None, finetune_iters: int | None, seed: int, device: str | None,
            out: str | None, cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Linear probe and k-NN top-1 on the joint features, audio alone and video alone, audio↔video
    R@1/5/10 on the config's av_eval.test, and fine-tuned top-1 when asked."""
    from maekit.eval.probe import load_trained_model
    from maekit.registry import build
    from maekit_audiovisual.evaluate import av_eval_report
    from maekit_audiovisual.model import AudioVisualMAE

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section = cfg.get("av_eval")
    if not section:
        fail(f"config {config} has no 'av_eval' section (see maekit-audiovisual's README)")
    if not cfg.get("eval_transform"):
        fail(f"config {config} has no eval_transform (the clips' evaluation resize and normalisation, e.g. "
             f"dict(type='video_eval', size=224, mean=(0.5,)*3, std=(0.5,)*3))")
    try:
        model = load_trained_model(cfg.model, checkpoint)
        if not isinstance(model, AudioVisualMAE):
            raise ValueError(f"config {config}: model {cfg.model.get('type')!r} is not an audio-visual model (av_mae, mavil)")
        model.to(choose_device(device))
        eval_transform = build("transform", cfg.eval_transform)
        train_transform = build("transform", cfg.data.get("transform")) if cfg.get("data") and cfg.data.get("transform") else None
        metrics = av_eval_report(model, dict(section), eval_transform, train_transform, finetune_iters, seed,
                                 log=lambda line: click.echo(line, err=True))
    except (ValueError, KeyError, RuntimeError, TypeError) as error:
        fail(str(error))
    write_metrics({**metrics, "checkpoint": checkpoint}, out)
