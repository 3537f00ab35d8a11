"""``maekit demo skeleton``: SkeletonMAE pre-trained on the procedural demo motions (parsed from
``.skeleton`` files), then core's probes (logistic regression and k-NN on mean-pooled tokens) and
MAMP's linear evaluation, pre-trained versus the same encoder untrained, plus stick figures."""
from __future__ import annotations

from typing import Any

__all__ = ["run_skeleton_demo"]


def _mamp_linear_evaluation(models: dict, train_set: Any, test_set: Any, transform: Any, cfg: Any) -> dict[str, float]:
    from maekit_skeleton.evaluate import linear_evaluation

    section = cfg.linear_eval
    return {f"linear_eval_accuracy_{name}": linear_evaluation(
                model, train_set, test_set, transform, section.get("num_classes"), section.get("epochs", 100),
                section.get("batch_size", 128), section.get("lr", 0.1))["linear_accuracy"]
            for name, model in models.items()}


def run_skeleton_demo(out_dir: Any, config: str = "skeleton_mae_demo", **options: Any) -> dict[str, Any]:
    from maekit.eval.demo import run_demo

    return run_demo(out_dir, config=config, extra_evaluation=_mamp_linear_evaluation, **options)
