"""``maekit pointcloud-eval`` (linear SVM on frozen features, or fine-tuning, of a config's encoder)
and ``maekit pointcloud-convert`` (official Point-MAE / MAE3D checkpoints → maekit's layout)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, finetune_and_report, frozen_evaluation, load_command_config

__all__ = ["pointcloud_eval", "pointcloud_convert"]


@click.command("pointcloud-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Pre-trained weights (default: random init).")
@click.option("--protocol", type=click.Choice(["svm", "finetune"]), default="svm", show_default=True)
@click.option("--work-dir", help="Fine-tuning: checkpoints, logs and metrics.json.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def pointcloud_eval(config: str, checkpoint: str | None, protocol: str, work_dir: str | None, out: str | None,
                    cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Shape classification with the config's encoder: Point-MAE's linear SVM on frozen [max, mean]
    features (``svm`` section: train, test, c) or fine-tuning (``finetune`` section, as ``maekit
    finetune``)."""
    cfg = load_command_config(config, cfg_options + more_cfg_options)
    if protocol == "finetune":
        finetune_and_report(cfg, config, checkpoint, work_dir, out)
        return

    def evaluate(model, train_set, test_set, transform, section) -> dict:
        from maekit_pointcloud.evaluate import svm_evaluation

        return svm_evaluation(model, train_set, test_set, transform, section.get("c", 1.0))

    frozen_evaluation(cfg, config, "svm", checkpoint, out, evaluate, protocol)


@click.command("pointcloud-convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--from", "source", type=click.Choice(["auto", "point-mae", "mae3d"]), default="auto", show_default=True)
def pointcloud_convert(src: str, dst: str, source: str) -> None:
    """Convert an official Point-MAE (``{"base_model": ...}``) or MAE3D (``.t7`` state dict)
    pre-training checkpoint into maekit's layout (``point_mae`` / ``mae3d``); DST by suffix:
    ``.safetensors`` or a weights-only ``.pth``. Loading never runs pickled code."""
    from maekit.io.checkpoint import CheckpointError, load_file, save_state_dict
    from maekit_pointcloud.interop import convert_point_checkpoint, unwrap_official

    try:
        state = convert_point_checkpoint(unwrap_official(load_file(src)), source)
    except (CheckpointError, ValueError) as error:
        fail(f"{src}: {error}")
    save_state_dict(state, dst)
    click.echo(f"wrote {len(state)} tensors in maekit's layout to {dst}")
