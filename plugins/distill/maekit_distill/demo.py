"""``maekit demo bootmae`` / ``maekit demo sdae``: the method and plain MAE pre-trained at the same
budget on the digits, each probed against its random init (core's side-by-side demo)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_bootmae_demo", "run_sdae_demo"]


def run_bootmae_demo(out_dir: str | Path, config: str = "bootmae_demo_digits", max_iters: int | None = None,
                     seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """BootMAE beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``bootmae/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "bootmae", max_iters, seed, amp, log)


def run_sdae_demo(out_dir: str | Path, config: str = "sdae_demo_digits", max_iters: int | None = None,
                  seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """SdAE beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``sdae/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "sdae", max_iters, seed, amp, log)
