"""``maekit demo ttt``: train on clean digits, test on corrupted held-out digits, with and without
test-time training — TTT-MAE (MAE pre-training, ViT probe, masked-reconstruction adaptation) and TTT
(joint rotation training, rotation adaptation), each measured against its own unadapted model."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from maekit.io.checkpoint import write_json

__all__ = ["run_ttt_demo"]


def run_ttt_demo(out_dir: str | Path, max_iters: int | None = None, seed: int = 0, amp: str = "off", log: Any = print,
                 limit: int | None = 200, steps: int | None = None, conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    """Both methods on the digits (configs ``ttt_mae_digits``, ``ttt_rotation_digits``): train, then
    accuracy per corruption without adaptation and after each test-time step, on ``limit`` held-out
    images of each condition (spread evenly over the 360). ``max_iters`` shortens every training stage (tests);
    ``steps`` the test-time steps; ``conditions`` replaces ``ttt_eval``'s corruptions/severities."""
    from maekit.data.views import evaluation_transform
    from maekit.eval.demo import pretrain
    from maekit.eval.test_time import TestTimeSettings
    from maekit.registry import build
    from maekit_ttt.evaluate import eval_options, evaluate_under_corruptions, load_for_test_time, run_probe_stage

    started = time.perf_counter()
    out_dir = Path(out_dir)
    metrics: dict[str, Any] = {"machine_note": "CPU, float32", "limit": limit}
    for method, config in (("ttt_mae", "ttt_mae_digits"), ("ttt", "ttt_rotation_digits")):
        stage_started = time.perf_counter()
        cfg, final_loss, checkpoint = pretrain(out_dir / method, config, max_iters, seed, amp)
        if method == "ttt_mae":  # the classifier on the frozen encoder, as the reference
            if max_iters is not None:
                cfg.merge_from_dict({"ttt_probe.schedule.max_iters": max_iters,
                                     "ttt_probe.schedule.warmup_iters": max_iters // 10})
            checkpoint = run_probe_stage(cfg, str(checkpoint), out_dir / method / "probe", seed=seed, device="cpu")
        options = eval_options({**cfg.ttt_eval, **(conditions or {}), "limit": limit})
        settings = TestTimeSettings.from_config({**cfg.ttt, **({"steps": steps} if steps is not None else {})})
        model = load_for_test_time(cfg.model, str(checkpoint))
        reference = build("dataset", options["test"])
        transform = evaluation_transform(reference, cfg.data.get("transform"), cfg.get("eval_transform"))
        log(f"{method}: trained in {time.perf_counter() - stage_started:.0f} s; test-time training on corrupted digits")
        result = evaluate_under_corruptions(model, options, settings, transform, log=lambda line, name=method: log(f"{name} {line}"),
                                            device="cpu", num_classes=cfg.model.num_classes)
        metrics[method] = {**result, "final_training_loss": final_loss, "checkpoint": str(checkpoint), "config": config}
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out_dir / "metrics.json", metrics)
    for method in ("ttt_mae", "ttt"):
        found = metrics[method]
        log(f"{method}: mean accuracy over the corruptions {found['mean_before']:.3f} without adaptation, "
            f"{found['mean_after']:.3f} after test-time training")
    return metrics
