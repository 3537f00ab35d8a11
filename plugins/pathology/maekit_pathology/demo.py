"""``maekit demo pathology``: MMAE pre-trained on the bundled demo tiles (RGB + Ruifrok H and E),
then the RGB-only encoder against its random init on the tile-source task: core's linear probe and
k-NN on all training labels, and MMAE's few-label evaluation (class-balanced label subsets, folds)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from maekit.io.checkpoint import write_json

__all__ = ["run_pathology_demo"]


def run_pathology_demo(out_dir: str | Path, config: str = "mmae_demo_tiles", max_iters: int | None = None,
                       seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    from maekit.engine import load_config
    from maekit.eval.demo import run_demo
    from maekit_pathology.evaluate import few_label_evaluation

    def few_labels(models: dict, train_set: Any, test_set: Any, transform: Any, cfg: Any) -> dict[str, float]:
        figures = {}
        for name, model in models.items():
            few = few_label_evaluation(model, train_set, test_set, transform, tuple(cfg.probe["label_counts"]), seed=seed)
            figures.update({f"few_label_{key}_{name}": value for key, value in few.items() if key.endswith(("mean", "std"))})
        return figures

    metrics = run_demo(out_dir, config, max_iters, seed, amp, log, extra_evaluation=few_labels)
    metrics["picture"] = metrics["reconstructions"]
    write_json(Path(out_dir) / "metrics.json", metrics)
    fewest = min(load_config(config).probe["label_counts"])
    log(f"few-label ({fewest} labels, 5 folds) linear probe: pretrained "
        f"{metrics[f'few_label_linear_{fewest}_labels_mean_pretrained']:.3f} vs random init "
        f"{metrics[f'few_label_linear_{fewest}_labels_mean_random_init']:.3f}; k-NN (k=20) "
        f"{metrics[f'few_label_knn20_{fewest}_labels_mean_pretrained']:.3f} vs "
        f"{metrics[f'few_label_knn20_{fewest}_labels_mean_random_init']:.3f}")
    return metrics
