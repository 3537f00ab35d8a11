"""``maekit demo supmae``: SupMAE and plain MAE pre-trained at the same budget on the digits, each
probed against its random init."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from maekit.io.checkpoint import write_json

__all__ = ["run_supmae_demo"]


def run_supmae_demo(out_dir: str | Path, config: str = "supmae_demo_digits", max_iters: int | None = None,
                    seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """Core's demo for ``config`` and for ``mae_demo_digits`` (the same budget), side by side in
    ``metrics.json``; pictures in ``supmae/`` and ``mae/``."""
    from maekit.eval.demo import run_demo

    started = time.perf_counter()
    out_dir = Path(out_dir)
    supervised = run_demo(out_dir / "supmae", config, max_iters, seed, amp, log)
    plain = run_demo(out_dir / "mae", "mae_demo_digits", max_iters, seed, amp, log)
    metrics = {**supervised, **{f"mae_{key}": value for key, value in plain.items()
                                if "accuracy" in key or key in ("final_loss", "seconds")},
               "seconds": round(time.perf_counter() - started, 1), "picture": supervised["reconstructions"]}
    write_json(out_dir / "metrics.json", metrics)
    log(f"linear probe: SupMAE {metrics['probe_accuracy_pretrained']:.3f} vs MAE {metrics['mae_probe_accuracy_pretrained']:.3f} "
        f"at the same budget (random init {metrics['probe_accuracy_random_init']:.3f}); k-NN "
        f"{metrics['knn_accuracy_pretrained']:.3f} vs {metrics['mae_knn_accuracy_pretrained']:.3f}")
    return metrics
