"""``maekit mri-preprocess`` (NIfTI folder → slice cache) and ``maekit synthesize`` (MT-Net on
the config's synthesis dataset: NIfTI volumes out, PSNR / SSIM / NMSE per subject)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, load_command_config, write_metrics

__all__ = ["mri_preprocess", "synthesize"]


@click.command("mri-preprocess")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Cache folder to write.")
@click.option("--layout", type=click.Choice(["brats", "ixi"]), default="brats", show_default=True)
@click.option("--contrasts", default=None, help="Comma-separated [brats: t1,t2,t1ce,flair; ixi: T1,T2,PD].")
@click.option("--size", default=256, show_default=True, help="Output slice side.")
@click.option("--crop", default="10,210,25,225", show_default=True, help="row0,row1,col0,col1, or 'none'.")
@click.option("--slices", default="50,110", show_default=True, help="first,last (exclusive), or 'none'.")
@click.option("--skip-invalid", is_flag=True, help="Leave out (and list) subjects that cannot be used instead of stopping.")
def mri_preprocess(root: str, out: str, layout: str, contrasts: str | None, size: int, crop: str, slices: str,
                   skip_invalid: bool) -> None:
    """Normalise, crop, slice and resize every subject's volumes under ROOT once (train with
    ``cache=OUT`` in the mri_slices / mri_paired_slices datasets and the same preprocessing)."""
    from maekit_mri.data import write_slice_cache
    from maekit_mri.nifti import BRATS_CONTRASTS, IXI_CONTRASTS

    def numbers(text: str, count: int, what: str):
        if text.lower() == "none":
            return None
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != count:
            fail(f"--{what} must be {count} comma-separated integers or 'none', got {text!r}")
        return values

    chosen = tuple(contrasts.split(",")) if contrasts else (BRATS_CONTRASTS if layout == "brats" else IXI_CONTRASTS)
    preprocessing = dict(crop=numbers(crop, 4, "crop"), slices=numbers(slices, 2, "slices"), size=size)
    try:
        count = write_slice_cache(root, out, layout, chosen, preprocessing, log=click.echo, skip_invalid=skip_invalid)
    except ValueError as error:
        fail(str(error))
    click.echo(f"wrote {count} subjects ({', '.join(chosen)}) to {out}")


@click.command("synthesize")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Trained MT-Net weights.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the NIfTI volumes and metrics.json.")
@cfg_options_option
def synthesize(config: str, checkpoint: str | None, out: str, cfg_options: tuple[str, ...],
               more_cfg_options: tuple[str, ...]) -> None:
    """Synthesise the target contrast for every subject of the config's synthesis.dataset: one
    NIfTI per subject, and PSNR / SSIM / NMSE per subject with mean ± std."""
    from pathlib import Path

    from maekit.eval.probe import load_trained_model
    from maekit.registry import build
    from maekit_mri.synthesis import evaluate_synthesis

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section = cfg.get("synthesis")
    if not section or "dataset" not in section:
        fail(f"config {config} has no 'synthesis' section with a 'dataset' (source/target pairs)")
    try:
        dataset = build("dataset", section["dataset"])
        model = load_trained_model(cfg.model, checkpoint)
        metrics = evaluate_synthesis(model, dataset, out)
    except (ValueError, KeyError, RuntimeError) as error:
        fail(str(error))
    write_metrics({**metrics, "checkpoint": checkpoint}, str(Path(out) / "metrics.json"))
