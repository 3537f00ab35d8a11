"""``maekit skeleton-preprocess`` (raw .skeleton folder → CTR-GCN-layout .npz) and ``maekit
skeleton-eval`` (MAMP's linear evaluation or fine-tuning of a config's encoder)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, finetune_and_report, frozen_evaluation, load_command_config

__all__ = ["skeleton_preprocess", "skeleton_eval"]


@click.command("skeleton-preprocess")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .npz to write.")
@click.option("--benchmark", type=click.Choice(["xsub", "xview", "xset"]), default="xsub", show_default=True)
@click.option("--subset", type=click.Choice(["ntu60", "ntu120"]), default="ntu60", show_default=True)
@click.option("--max-frames", default=300, show_default=True, help="Frames per sequence after zero-padding.")
@click.option("--align/--no-align", default=False, show_default=True, help="ST-GCN's view alignment.")
@click.option("--ignore-list", type=click.Path(exists=True, dir_okay=False),
              help="NTU's samples-with-missing-skeletons list.")
def skeleton_preprocess(root: str, out: str, benchmark: str, subset: str, max_frames: int, align: bool,
                        ignore_list: str | None) -> None:
    """Parse, denoise and centre every NTU .skeleton file under ROOT into one .npz with x_train,
    y_train, x_test, y_test (the CTR-GCN / MAMP layout; read it with the ntu_npz dataset)."""
    from maekit_skeleton.data import write_ntu_npz

    try:
        counts = write_ntu_npz(root, out, benchmark, subset, max_frames, align, ignore_list, log=click.echo)
    except ValueError as error:
        fail(str(error))
    click.echo(f"wrote {counts['train']} training and {counts['test']} test sequences ({subset} {benchmark}) to {out}")


@click.command("skeleton-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Pre-trained weights (default: random init).")
@click.option("--protocol", type=click.Choice(["linear", "finetune"]), default="linear", show_default=True)
@click.option("--work-dir", help="Fine-tuning: checkpoints, logs and metrics.json.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def skeleton_eval(config: str, checkpoint: str | None, protocol: str, work_dir: str | None, out: str | None,
                  cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Action recognition with the config's encoder: MAMP's linear evaluation (``linear_eval``
    section) or fine-tuning (``finetune`` section, as ``maekit finetune``)."""
    cfg = load_command_config(config, cfg_options + more_cfg_options)
    if protocol == "finetune":
        finetune_and_report(cfg, config, checkpoint, work_dir, out)
        return

    def evaluate(model, train_set, test_set, transform, section) -> dict:
        from maekit_skeleton.evaluate import linear_evaluation

        return linear_evaluation(model, train_set, test_set, transform, section.get("num_classes"),
                                 section.get("epochs", 100), section.get("batch_size", 128), section.get("lr", 0.1))

    frozen_evaluation(cfg, config, "linear_eval", checkpoint, out, evaluate, protocol)
