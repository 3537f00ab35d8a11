"""``maekit pathology-stains`` (cache the stain images of a tile folder) and ``maekit
pathology-eval`` (MMAE's few-label evaluation of the RGB encoder)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, load_command_config, write_metrics

__all__ = ["pathology_stains", "pathology_eval"]


@click.command("pathology-stains")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Cache folder to write.")
@click.option("--method", type=click.Choice(["vahadane", "ruifrok"]), default="vahadane", show_default=True)
@click.option("--exclude", multiple=True, help="A class folder to leave out (repeat; e.g. --exclude BACK).")
def pathology_stains(root: str, out: str, method: str, exclude: tuple[str, ...]) -> None:
    """Separate the haematoxylin and eosin images of every tile under ROOT once and cache them
    (train with dataset ``pathology_tiles(stains="cache", stain_cache=OUT)``). Tiles without tissue
    get the Ruifrok vectors (listed as they go and in the cache's manifest)."""
    from maekit_pathology.data import write_stain_cache

    try:
        count = write_stain_cache(root, out, method, log=click.echo, exclude=exclude)
    except ValueError as error:
        fail(str(error))
    click.echo(f"wrote the {method} stains of {count} tiles to {out}")


@click.command("pathology-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Trained weights (default: random init).")
@click.option("--labels", "label_counts", type=int, multiple=True, help="Label counts [100, 1000].")
@click.option("--folds", default=5, show_default=True)
@click.option("--pool", type=click.Choice(["mean", "cls"]), default="mean", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def pathology_eval(config: str, checkpoint: str | None, label_counts: tuple[int, ...], folds: int, pool: str,
                   out: str | None, cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Few-label evaluation of the RGB encoder on the config's probe.train/probe.test datasets:
    class-balanced subsets of each label count in stratified folds, linear probe and k-NN (10, 20)."""
    from maekit.data.views import EvalTransform
    from maekit.eval.probe import load_trained_model
    from maekit.registry import build
    from maekit_pathology.evaluate import few_label_evaluation

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section = cfg.get("probe")
    if not section or "train" not in section or "test" not in section:
        fail(f"config {config} has no 'probe' section with 'train' and 'test' datasets")
    try:
        train_set, test_set = build("dataset", section["train"]), build("dataset", section["test"])
        transform = EvalTransform.matching(train_set, (cfg.get("data") or {}).get("transform"))
        model = load_trained_model(cfg.model, checkpoint)
        metrics = few_label_evaluation(model, train_set, test_set, transform,
                                       label_counts or tuple(section.get("label_counts", (100, 1000))), folds,
                                       pool=pool)
    except (ValueError, KeyError, RuntimeError) as error:
        fail(str(error))
    write_metrics({**metrics, "checkpoint": checkpoint}, out)
