"""``maekit video-eval`` (fine-tuning with VideoMAE's head and multi-view testing, or a frozen-feature
probe) and ``maekit video-convert`` (official VideoMAE checkpoints → maekit's layout)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, finetune_and_report, frozen_evaluation, load_command_config

__all__ = ["video_eval", "video_convert"]


@click.command("video-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Pre-trained weights (default: random init).")
@click.option("--protocol", type=click.Choice(["finetune", "frozen"]), default="finetune", show_default=True)
@click.option("--work-dir", help="Fine-tuning: checkpoints, logs and metrics.json.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def video_eval(config: str, checkpoint: str | None, protocol: str, work_dir: str | None, out: str | None,
               cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Video classification with the config's encoder: fine-tuning (``finetune`` section: mean pool +
    fc_norm, layer decay, repeated augmentation; top-1 over the test views K clips × crops, softmax
    averaged) or a frozen-feature probe (``frozen_eval`` section: logistic regression and k-NN on
    mean-pooled tokens of one centred clip)."""
    cfg = load_command_config(config, cfg_options + more_cfg_options)
    if protocol == "finetune":
        finetune_and_report(cfg, config, checkpoint, work_dir, out)
        return

    def evaluate(model, train_set, test_set, transform, section) -> dict:
        from maekit.eval.probe import probe_pools

        scores = probe_pools(model, train_set, test_set, transform, ("mean",), k=section.get("k", 20))["mean"]
        return {**scores, "features": "mean-pooled encoder tokens"}

    frozen_evaluation(cfg, config, "frozen_eval", checkpoint, out, evaluate, protocol)


@click.command("video-convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--from", "source", type=click.Choice(["auto", "pretrain", "finetune"]), default="auto", show_default=True)
def video_convert(src: str, dst: str, source: str) -> None:
    """Convert an official VideoMAE checkpoint — pre-training (``encoder.*``, ``decoder.*``) into
    ``videomae``'s layout, or fine-tuned (``blocks``, ``fc_norm``, ``head``) into
    ``video_classifier``'s; DST by suffix: ``.safetensors`` or a weights-only ``.pth``. Loading
    never runs pickled code."""
    from maekit.io.checkpoint import CheckpointError, load_file, save_state_dict
    from maekit_video.interop import convert_videomae_checkpoint

    try:
        state, layout = convert_videomae_checkpoint(load_file(src), source)
    except (CheckpointError, ValueError) as error:
        fail(f"{src}: {error}")
    save_state_dict(state, dst)
    model = "videomae" if layout == "pretrain" else "video_classifier"
    click.echo(f"converted {len(state)} tensors ({layout} layout) to {dst}: load it into {model}")
