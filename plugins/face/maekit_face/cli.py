"""``maekit face-crop`` (cache face crops of a frame folder) and ``maekit au-eval`` (train an AU
detector per fold and report per-AU F1, clean and occluded)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, default_work_dir, fail, load_command_config, write_metrics

__all__ = ["face_crop", "au_eval"]


@click.command("face-crop")
@click.argument("images", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Cache folder to write.")
@click.option("--size", default=256, show_default=True, help="Side of the square crops (the protocol's 256).")
@click.option("--margin", default=0.25, show_default=True, help="Share of the face's side added on each side.")
def face_crop(images: str, out: str, size: int, margin: float) -> None:
    """Detect the face in every image under IMAGES (scikit-image's bundled LBP frontal-face
    cascade, offline), crop and resize it, and cache it under OUT at the same relative path; read
    it with a dataset's ``crops=OUT``. Frames with no face found get the centre square and are
    listed in OUT/face_crops.json."""
    from maekit_face.data import write_face_crops

    if size < 16 or not 0 <= margin <= 1:
        fail(f"--size must be >= 16 and --margin in [0, 1], got {size} and {margin}")
    try:
        manifest = write_face_crops(images, out, size, margin, log=click.echo)
    except ValueError as error:
        fail(str(error))
    click.echo(f"cropped {len(manifest['boxes'])} frames into {out}; no face found in {len(manifest['no_face'])} "
               f"(centre crops, listed in face_crops.json)")


@click.command("au-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Pre-trained weights (default: random init).")
@click.option("--method", type=click.Choice(["finetune", "occlusion"]), default="finetune", show_default=True,
              help="finetune: the encoder trains on whole faces; occlusion: the frozen encoder sees the visible "
                   "patches, distilled from --teacher.")
@click.option("--teacher", help="occlusion: a detector fine-tuned on clean faces ({fold} stands for the fold).")
@click.option("--fold", "folds", type=int, multiple=True, help="Folds to run, named by their test part (repeat; "
              "default: the config's au.folds, else 1 2 3).")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Where each fold trains (default work_dirs/<config>_au).")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def au_eval(config: str, checkpoint: str | None, method: str, teacher: str | None, folds: tuple[int, ...],
            work_dir: str | None, device: str | None, out: str | None, cfg_options: tuple[str, ...],
            more_cfg_options: tuple[str, ...]) -> None:
    """Train an AU detector on each fold's training subjects from the encoder of CONFIG's model
    (CHECKPOINT or random init) with the config's ``au`` section, then report per-AU F1 (threshold
    0.5, every test frame of the fold, unknown labels left out) and the average, per evaluation
    condition (clean, random patches, blocks), per fold and as the mean over folds."""
    from maekit_face.evaluate import format_tables, run_au_eval

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    if method == "occlusion" and not teacher:
        fail("--method occlusion distils from a teacher: give --teacher (a detector trained with --method finetune, "
             "e.g. work_dirs/<config>_au/fold{fold}/iter_N.pth)")
    try:
        metrics = run_au_eval(cfg, checkpoint, work_dir or default_work_dir(config) + "_au", method, teacher,
                              folds or None, device, log=click.echo)
    except (ValueError, KeyError, FileNotFoundError) as error:
        fail(str(error))
    click.echo(format_tables(metrics), err=True)  # the table for people; stdout stays the JSON
    write_metrics(metrics, out)
