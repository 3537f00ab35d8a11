"""``maekit demo flip``: FLIP on the digits with templated captions, judged by zero-shot
classification and retrieval on held-out digits against the same model untrained."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from maekit.io.checkpoint import write_json

__all__ = ["run_flip_demo"]


def run_flip_demo(out_dir: str | Path, config: str = "flip_demo_digits", max_iters: int | None = None,
                  seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """Pre-train ``config``, then zero-shot top-1/top-5 and retrieval recall on its held-out
    ``zeroshot``/``retrieval`` datasets for the trained and an untrained model; writes
    ``metrics.json`` and ``masked_inputs.png`` (input | what the image tower saw)."""
    from maekit.data.views import EvalTransform
    from maekit.eval.demo import pretrain, trained_and_untrained
    from maekit.eval.visualize import save_panels
    from maekit.registry import build
    from maekit_flip.evaluate import retrieval_recall, zero_shot_accuracy

    started = time.perf_counter()
    out_dir = Path(out_dir)
    cfg, final_loss, checkpoint = pretrain(out_dir, config, max_iters, seed, amp)
    test_set = build("dataset", cfg.zeroshot["dataset"])
    retrieval_set = build("dataset", cfg.retrieval["dataset"])
    transform = EvalTransform.matching(test_set, cfg.data.get("transform"))
    models = trained_and_untrained(cfg.model, checkpoint, seed)
    metrics: dict[str, Any] = {}
    for name, model in models.items():
        scores = zero_shot_accuracy(model, test_set, test_set.classes, cfg.zeroshot["templates"], transform)
        metrics[f"zeroshot_top1_{name}"], metrics[f"zeroshot_top5_{name}"] = scores["top1"], scores["top5"]
        recall = retrieval_recall(model, retrieval_set, transform, ks=(1, 5))
        metrics.update({f"{key}_{name}": value for key, value in recall.items() if "@" in key})
    images = torch.stack([transform(test_set[i]["inputs"]) for i in range(8)])
    grid = save_panels(models["pretrained"], images, transform.mean, transform.std, out_dir / "masked_inputs.png",
                       seed=seed, scale=4)
    metrics.update({"final_loss": final_loss, "iterations": int(cfg.schedule.max_iters),
                    "seconds": round(time.perf_counter() - started, 1), "config": config, "seed": seed,
                    "checkpoint": str(checkpoint), "picture": str(grid),
                    "evaluated_on": f"{len(test_set)} held-out digits, {len(test_set.classes)} classes"})
    write_json(out_dir / "metrics.json", metrics)
    log(f"zero-shot top-1: pretrained {metrics['zeroshot_top1_pretrained']:.3f} vs random init "
        f"{metrics['zeroshot_top1_random_init']:.3f}; text→image R@1 {metrics['text_to_image_R@1_pretrained']:.3f} vs "
        f"{metrics['text_to_image_R@1_random_init']:.3f}; final loss {final_loss:.4f}; {metrics['seconds']} s")
    return metrics
