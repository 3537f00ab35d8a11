"""The learning-rate schedule of the reference MAE (``util/lr_sched.py``), per iteration.

Linear warm-up from 0 that reaches the peak exactly at iteration ``W``, then a half-cycle cosine
from the peak down to ``min_lr`` at the last iteration::

    lr(t) = peak · t / W                                          t < W
    lr(t) = min_lr + (peak − min_lr) · ½ (1 + cos(π (t − W) / (T − W)))    t ≥ W

Each parameter group follows it scaled by its own share of the peak (layer-wise decay keeps
``lr = scale · lr(t)``, as the reference sets ``param_group["lr"] = lr * lr_scale``). The value is
computed in closed form from the iteration, not chained from the previous one: a resumed run and
a one-step warm-up get exactly the schedule above. (mmengine's LinearLR → CosineAnnealingLR chain,
used before, ended the warm-up one step short of the peak and, with ``W = 1``, left the whole run
at 1e-6 × the peak.)
"""
from __future__ import annotations

import math
from typing import Any

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS

__all__ = ["WarmupCosineLR", "mae_lr"]


def mae_lr(iteration: int, peak: float, warmup_iters: int, max_iters: int, min_lr: float = 0.0) -> float:
    """The reference MAE learning rate at ``iteration`` (0-based) of ``max_iters``."""
    if iteration < warmup_iters:
        return peak * iteration / warmup_iters
    progress = (iteration - warmup_iters) / max(1, max_iters - warmup_iters)
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@PARAM_SCHEDULERS.register_module(name="MaekitWarmupCosineLR")
class WarmupCosineLR(LRSchedulerMixin, _ParamScheduler):
    """:func:`mae_lr` for every parameter group, scaled by the group's share of the optimiser's lr."""

    def __init__(self, optimizer: Any, warmup_iters: int, max_iters: int, min_lr: float = 0.0, **kwargs: Any) -> None:
        if not 0 <= warmup_iters < max_iters:
            raise ValueError(f"schedule.warmup_iters must be in [0, max_iters={max_iters}), got {warmup_iters}")
        self.warmup_iters, self.max_iters, self.min_lr = int(warmup_iters), int(max_iters), float(min_lr)
        kwargs.update(begin=0, end=self.max_iters, by_epoch=False)
        super().__init__(optimizer, **kwargs)

    def load_state_dict(self, state_dict: dict) -> None:
        """The position in the run from the checkpoint; the schedule itself from the config (a
        checkpoint of an older maekit holds a LinearLR → CosineAnnealingLR chain's state here)."""
        ours = {key: getattr(self, key) for key in ("warmup_iters", "max_iters", "min_lr", "begin", "end", "by_epoch")}
        super().load_state_dict(state_dict)
        self.__dict__.update(ours)
        self.last_step = self._global_step  # begin = 0: one step per iteration

    def _get_value(self) -> list[float]:
        # the peak is the optimiser's own lr when a group has it (groups with an lr multiplier or
        # layer decay are shares of it), else the largest group's
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # an OptimWrapper or a torch optimizer
        default = optimizer.defaults.get("lr")
        peak = float(default) if default and any(math.isclose(b, default) for b in self.base_values) else max(self.base_values)
        shape = mae_lr(self.last_step, 1.0, self.warmup_iters, self.max_iters, self.min_lr / peak if peak else 0.0)
        return [base * shape for base in self.base_values]
