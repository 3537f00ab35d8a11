"""``maekit audio-eval`` (fine-tuning with Audio-MAE's recipe, or a frozen-feature probe) and
``maekit audio-convert`` (official Audio-MAE checkpoints → maekit's layout)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, finetune_and_report, frozen_evaluation, load_command_config

__all__ = ["audio_eval", "audio_convert"]


@click.command("audio-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Pre-trained weights (default: random init).")
@click.option("--protocol", type=click.Choice(["finetune", "frozen"]), default="finetune", show_default=True)
@click.option("--work-dir", help="Fine-tuning: checkpoints, logs and metrics.json.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def audio_eval(config: str, checkpoint: str | None, protocol: str, work_dir: str | None, out: str | None,
               cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Audio classification with the config's encoder: fine-tuning (``finetune`` section: SpecAugment,
    mixup, 2-D token masking; accuracy, or mAP for multi-label sets) or a frozen-feature probe
    (``frozen_eval`` section: logistic regression and k-NN on mean-pooled tokens; mAP when
    multi-label)."""
    cfg = load_command_config(config, cfg_options + more_cfg_options)
    if protocol == "finetune":
        finetune_and_report(cfg, config, checkpoint, work_dir, out)
        return

    def evaluate(model, train_set, test_set, transform, section) -> dict:
        from maekit_audio.evaluate import frozen_audio_evaluation

        return frozen_audio_evaluation(model, train_set, test_set, transform, section.get("k", 20))

    frozen_evaluation(cfg, config, "frozen_eval", checkpoint, out, evaluate, protocol)


@click.command("audio-convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--from", "source", type=click.Choice(["auto", "pretrain", "finetune"]), default="auto", show_default=True)
def audio_convert(src: str, dst: str, source: str) -> None:
    """Convert an official Audio-MAE checkpoint — pre-training (``models_mae``) into ``audio_mae``'s
    layout, or fine-tuned (``models_vit``) into ``audio_classifier``'s; DST by suffix:
    ``.safetensors`` or a weights-only ``.pth``. Loading never runs pickled code."""
    from maekit.io.checkpoint import CheckpointError, load_file, save_state_dict
    from maekit_audio.interop import convert_audio_checkpoint

    try:
        state, layout = convert_audio_checkpoint(load_file(src), source)
    except (CheckpointError, ValueError) as error:
        fail(f"{src}: {error}")
    save_state_dict(state, dst)
    model = "audio_mae" if layout == "pretrain" else "audio_classifier"
    click.echo(f"converted {len(state)} tensors ({layout} layout) to {dst}: load it into {model}")
