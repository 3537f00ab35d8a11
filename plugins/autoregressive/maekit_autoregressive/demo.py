"""``maekit demo saim`` on scikit-learn's digits: SAIM and plain MAE at the same budget (core's
mae_demo_digits), each probed against its random init; the picture holds SAIM's predictions of the
blurred digits. (``maekit demo igpt`` is core's demo on ``igpt_demo_digits``.)"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_saim_demo"]


def run_saim_demo(out_dir: str | Path, config: str = "saim_demo_digits", max_iters: int | None = None, seed: int = 0,
                  amp: str = "off", log: Any = print) -> dict[str, Any]:
    """SAIM beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``saim/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "saim", max_iters, seed, amp, log)
