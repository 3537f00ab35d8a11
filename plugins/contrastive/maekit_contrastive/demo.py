"""``maekit demo cmae`` / ``macrl`` / ``sdmae``: the method and plain MAE pre-trained at the same
budget on the digits (core's ``mae_demo_digits``: 1000 iterations of batch 64), each probed against
its random init. ``sdmae`` adds SDMAE's small-data claim: both again on a stratified 10% of the
training images, probed with those 10% of the labels (test: the whole test split).
``maekit demo contrastive`` runs all of it with one plain-MAE run per data size."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["run_cmae_demo", "run_macrl_demo", "run_sdmae_demo", "run_contrastive_demo", "SMALL_DATA"]

#: SDMAE's small-data setting: a stratified 10% of the digits' training split (143 images), used
#: unlabelled for pre-training and labelled for the probe
SMALL_DATA = {"data.dataset.fraction": 0.1, "probe.train.fraction": 0.1}
METHODS = {"cmae": "cmae_demo_digits", "macrl": "macrl_demo_digits", "sdmae": "sdmae_demo_digits"}


def run_cmae_demo(out_dir: str | Path, config: str = "cmae_demo_digits", max_iters: int | None = None, seed: int = 0,
                  amp: str = "off", log: Any = print) -> dict[str, Any]:
    """CMAE beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``cmae/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "cmae", max_iters, seed, amp, log)


def run_macrl_demo(out_dir: str | Path, config: str = "macrl_demo_digits", max_iters: int | None = None, seed: int = 0,
                   amp: str = "off", log: Any = print) -> dict[str, Any]:
    """MACRL beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``macrl/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "macrl", max_iters, seed, amp, log)


def run_sdmae_demo(out_dir: str | Path, config: str = "sdmae_demo_digits", max_iters: int | None = None, seed: int = 0,
                   amp: str = "off", log: Any = print) -> dict[str, Any]:
    """SDMAE beside MAE on all the training digits and on 10% of them (:data:`SMALL_DATA`)."""
    return run_contrastive_demo(out_dir, max_iters, seed, amp, log, methods={"sdmae": config}, small_data=True)


def run_contrastive_demo(out_dir: str | Path, max_iters: int | None = None, seed: int = 0, amp: str = "off",
                         log: Any = print, methods: dict[str, str] | None = None, small_data: bool = True) -> dict[str, Any]:
    """Each of ``methods`` (name → config; all three by default) and plain MAE at the same budget,
    each probed against its random init (core's demo, in ``out_dir/<name>/``); with ``small_data``,
    SDMAE (when among them) and MAE again on :data:`SMALL_DATA` (``out_dir/<name>_small/``).
    ``metrics.json`` holds every figure prefixed by the run's name."""
    from maekit.eval.demo import run_demo
    from maekit.io.checkpoint import write_json

    started = time.perf_counter()
    out_dir = Path(out_dir)
    methods = dict(METHODS if methods is None else methods)
    runs: list[tuple[str, str, dict[str, Any] | None]] = [(name, config, None) for name, config in methods.items()]
    runs.append(("mae", "mae_demo_digits", None))
    if small_data and "sdmae" in methods:
        runs += [("sdmae_small", methods["sdmae"], SMALL_DATA), ("mae_small", "mae_demo_digits", SMALL_DATA)]
    metrics: dict[str, Any] = {}
    for name, config, overrides in runs:
        found = run_demo(out_dir / name, config, max_iters, seed, amp, log, overrides=overrides)
        metrics.update({f"{name}_{key}": value for key, value in found.items()
                        if "accuracy" in key or key in ("final_loss", "seconds", "reconstructions")})
    metrics.update({"seed": seed, "seconds": round(time.perf_counter() - started, 1)})
    write_json(out_dir / "metrics.json", metrics)
    log("linear probe of mean-pooled features (random init in brackets): " + "; ".join(
        f"{name} {metrics[f'{name}_probe_accuracy_pretrained']:.3f} ({metrics[f'{name}_probe_accuracy_random_init']:.3f})"
        for name, _, _ in runs))
    return metrics
