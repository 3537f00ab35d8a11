"""``maekit videotext-eval``: text↔video retrieval of a SimVTP / SMAUG model from the command line."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, choose_device, fail, load_command_config, write_metrics

__all__ = ["videotext_eval"]


@click.command("videotext-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="Trained weights (a maekit train checkpoint or maekit weights; default: random init).")
@click.option("--finetune-iters", type=click.IntRange(min=0), default=None,
              help="Fine-tune for this many steps before testing again (default: the config's retrieval.finetune.iters; 0: zero-shot only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fine-tuning's order and clips.")
@click.option("--device", default=None, help="Where to run: cpu, cuda, cuda:1 ... [default: cuda when available, else cpu]")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def videotext_eval(config: str, checkpoint: str | None, finetune_iters: int | None, seed: int, device: str | None,
                   out: str | None, cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Text→video and video→text R@1/5/10, median and mean rank on the config's retrieval.test,
    zero-shot from the contrastive features, then after fine-tuning on retrieval.train."""
    from maekit.eval.probe import load_trained_model
    from maekit.registry import build
    from maekit_videotext.evaluate import retrieval_report

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section = cfg.get("retrieval")
    if not section:
        fail(f"config {config} has no 'retrieval' section (see maekit-videotext's README)")
    if not cfg.get("eval_transform"):
        fail(f"config {config} has no eval_transform (the clips' evaluation resize and normalisation, e.g. "
             f"dict(type='video_eval', size=224))")
    try:
        model = load_trained_model(cfg.model, checkpoint)
        if not hasattr(model, "encode_text"):
            raise ValueError(f"config {config}: model {cfg.model.get('type')!r} is not a video-text model (simvtp, smaug)")
        model.to(choose_device(device))
        eval_transform = build("transform", cfg.eval_transform)
        train_transform = build("transform", cfg.data.get("transform")) if cfg.get("data") and cfg.data.get("transform") else None
        metrics = retrieval_report(model, dict(section), eval_transform, train_transform, finetune_iters, seed,
                                   log=lambda line: click.echo(line, err=True))
    except (ValueError, KeyError, RuntimeError, TypeError) as error:
        fail(str(error))
    write_metrics({**metrics, "checkpoint": checkpoint}, out)
