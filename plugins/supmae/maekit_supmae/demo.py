"""``maekit demo supmae``: SupMAE and plain MAE pre-trained at the same budget on the digits, each
probed against its random init."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_supmae_demo"]


def run_supmae_demo(out_dir: str | Path, config: str = "supmae_demo_digits", max_iters: int | None = None,
                    seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """Core's demo for ``config`` and for ``mae_demo_digits`` (the same budget), side by side in
    ``metrics.json``; pictures in ``supmae/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "supmae", max_iters, seed, amp, log)
