"""``maekit video-eval`` (fine-tuning with VideoMAE's head and multi-view testing, or a frozen-feature
probe), ``maekit video-convert`` (official VideoMAE checkpoints → maekit's layout) and ``maekit
video-propagate`` (label propagation on DAVIS-2017 folders, J&F)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, finetune_and_report, frozen_evaluation, load_command_config

__all__ = ["video_eval", "video_convert", "video_propagate"]


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


@click.command("video-propagate")
@click.argument("config")
@click.option("--davis", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="A DAVIS-2017 folder (JPEGImages/, Annotations/, ImageSets/2017/).")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Pre-trained weights (default: random init).")
@click.option("--split", default="val", show_default=True, help="The ImageSets/2017 list to run.")
@click.option("--sequence", "sequences", multiple=True, help="Run these sequences only (repeatable).")
@click.option("--out", type=click.Path(file_okay=False), help="Write the predicted masks (DAVIS's results layout) and metrics.json here.")
@cfg_options_option
def video_propagate(config: str, root: str, checkpoint: str | None, split: str, sequences: tuple[str, ...],
                    out: str | None, cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Label propagation on frozen features (SiamMAE's evaluation): each sequence's first-frame mask
    is carried through its frames by the config's encoder (``propagation`` section: topk, radius,
    context, temperature, size, resolution; SiamMAE's 7, 20, 20, 0.7 and CropMAE's 480×880 by
    default), scored with DAVIS-2017's J&F per sequence and overall (mean over objects)."""
    from pathlib import Path

    from maekit.cli.support import write_metrics
    from maekit.eval.probe import load_trained_model
    from maekit_video.propagation import evaluate_propagation, propagation_options, read_davis

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    try:
        settings, size, resolution = propagation_options(cfg.get("propagation"))
        found = read_davis(root, split, resolution, list(sequences) or None)
        model = load_trained_model(cfg.model, checkpoint)
        metrics = evaluate_propagation(model, found, size, settings, out, log=click.echo)
    except ValueError as error:
        fail(str(error))
    write_metrics({**metrics, "checkpoint": checkpoint, "davis": root, "split": split},
                  str(Path(out) / "metrics.json") if out else None)
