"""``maekit demo igpt`` / ``maekit demo saim`` on scikit-learn's digits.

igpt: iGPT (raster order) pre-trained on 16×16 palette pixels and probed at its middle block
against the same network untrained (with the same palette); the picture holds completions of the
digits' lower halves. saim: SAIM and plain MAE at the same budget (core's mae_demo_digits), each
probed against its random init; the picture holds SAIM's predictions of the blurred digits."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_igpt_demo", "run_saim_demo"]


def run_igpt_demo(out_dir: str | Path, config: str = "igpt_demo_digits", max_iters: int | None = None, seed: int = 0,
                  amp: str = "off", log: Any = print) -> dict[str, Any]:
    """iGPT against its random init; ``metrics.json`` and ``reconstructions.png`` (half-images |
    three completions | the digit in palette colours) in ``out_dir``."""
    from maekit.eval.demo import run_demo

    return run_demo(out_dir, config, max_iters, seed, amp, log)


def run_saim_demo(out_dir: str | Path, config: str = "saim_demo_digits", max_iters: int | None = None, seed: int = 0,
                  amp: str = "off", log: Any = print) -> dict[str, Any]:
    """SAIM beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``saim/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "saim", max_iters, seed, amp, log)
