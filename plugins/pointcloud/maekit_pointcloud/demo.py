"""``maekit demo pointcloud``: Point-MAE (or, with ``--config mae3d_demo``, MAE3D) pre-trained on
the procedural demo shapes, then core's probes (logistic regression and k-NN on mean-pooled patch
tokens) and Point-MAE's linear SVM on [max, mean] features, pre-trained versus the same encoder
untrained, and the rendered clouds (input | visible patches | reconstruction)."""
from __future__ import annotations

from typing import Any

__all__ = ["run_pointcloud_demo"]


def _svm(models: dict, train_set: Any, test_set: Any, transform: Any, cfg: Any) -> dict[str, float]:
    from maekit_pointcloud.evaluate import svm_evaluation

    c = (cfg.get("svm") or {}).get("c", 1.0)
    return {f"svm_accuracy_{name}": svm_evaluation(model, train_set, test_set, transform, c)["svm_accuracy"]
            for name, model in models.items()}


def run_pointcloud_demo(out_dir: Any, config: str = "point_mae_demo", **options: Any) -> dict[str, Any]:
    from maekit.eval.demo import run_demo

    return run_demo(out_dir, config=config, extra_evaluation=_svm, **options)
