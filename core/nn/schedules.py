"""Schedules for values that change over a run: a teacher's EMA momentum, a loss term's weight.

A :class:`Schedule` maps the run's position to a number in closed form (no state carried from one
step to the next), so a resumed run and every DDP rank compute the same value from the iteration
alone. ``by_epoch`` schedules move once per epoch: their position is ``iteration //
iters_per_epoch``, as the references that set such values at the start of each epoch do.

:class:`ScheduledValues` holds named schedules inside a method (its current values are a buffer,
so they travel with the model's state); the training engine's ``LossWeightHook`` calls
:func:`set_schedule_progress` before every iteration; a loop of one's own calls it too.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

__all__ = ["Schedule", "ConstantSchedule", "CosineSchedule", "PiecewiseSchedule", "build_schedule",
           "ScheduledValues", "set_schedule_progress"]


class Schedule:
    """A value as a function of the run's position (iterations, or epochs with ``by_epoch``)."""

    by_epoch: bool = False

    def position(self, iteration: int, iters_per_epoch: int | None = None) -> int:
        """The step this schedule is indexed by: the iteration, or the epoch it falls in."""
        if not self.by_epoch:
            return iteration
        if not iters_per_epoch or iters_per_epoch < 1:
            raise ValueError(f"{type(self).__name__} counts epochs and needs iters_per_epoch >= 1, got {iters_per_epoch!r}")
        return iteration // iters_per_epoch

    def at(self, step: int) -> float:
        """The value at ``step`` (an iteration or an epoch, in this schedule's unit)."""
        raise NotImplementedError

    def __call__(self, iteration: int, iters_per_epoch: int | None = None) -> float:
        return self.at(self.position(iteration, iters_per_epoch))


class ConstantSchedule(Schedule):
    """The same value throughout."""

    def __init__(self, value: float, by_epoch: bool = False) -> None:
        self.value, self.by_epoch = float(value), bool(by_epoch)

    def at(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.value})"


class CosineSchedule(Schedule):
    """Half a cosine from ``start`` (step 0) towards ``end`` over ``length`` steps, then ``end``:
    ``end + ½(start − end)(1 + cos(π·step/length))`` — DINO's and SdAE's ``cosine_scheduler``
    (whose last entry, step ``length − 1``, stops just short of ``end``). ``length=None``: over the
    whole run, whose length the training engine gives (:meth:`fit_run`) before the first step —
    DINO's and iBOT's teacher momentum, which a shortened or lengthened run keeps."""

    def __init__(self, start: float, end: float, length: int | None, by_epoch: bool = False) -> None:
        if length is not None and (not isinstance(length, int) or length < 1):
            raise ValueError(f"cosine schedule length must be a positive int (or None: the whole run), got {length!r}")
        self.start, self.end, self.length, self.by_epoch = float(start), float(end), length, bool(by_epoch)
        self.over_run = length is None

    def fit_run(self, max_iters: int, iters_per_epoch: int | None = None) -> None:
        """Span the run: ``max_iters`` iterations (epochs for a ``by_epoch`` schedule). Only a
        schedule built with ``length=None`` changes."""
        if self.over_run:
            self.length = max(1, max_iters // iters_per_epoch if self.by_epoch and iters_per_epoch else max_iters)

    def at(self, step: int) -> float:
        if self.length is None:
            raise ValueError("a cosine schedule over the whole run (length=None) has no length until training starts "
                             "(the engine's teacher hook gives it; a loop of one's own calls fit_run)")
        progress = min(max(step, 0), self.length) / self.length
        return self.end + 0.5 * (self.start - self.end) * (1.0 + math.cos(math.pi * progress))

    def __repr__(self) -> str:
        unit = "epochs" if self.by_epoch else "iterations"
        length = "the run" if self.over_run else f"{self.length} {unit}"
        return f"CosineSchedule({self.start} -> {self.end} over {length})"


class PiecewiseSchedule(Schedule):
    """Straight lines between ``points`` ``[(step, value), ...]`` (steps increasing); the first
    value before the first point, the last after the last. BootMAE's momentum is
    ``[(0, 0.999), (100, 0.9999), (400, 0.99999)]`` by epoch."""

    def __init__(self, points: Sequence[Sequence[float]], by_epoch: bool = False) -> None:
        pairs = [(float(step), float(value)) for step, value in points]
        if not pairs:
            raise ValueError("a piecewise schedule needs at least one (step, value) point")
        if any(b[0] <= a[0] for a, b in zip(pairs, pairs[1:])):
            raise ValueError(f"piecewise schedule steps must increase, got {[p[0] for p in pairs]}")
        self.points, self.by_epoch = pairs, bool(by_epoch)

    def at(self, step: int) -> float:
        if step <= self.points[0][0]:
            return self.points[0][1]
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:]):
            if step <= x1:
                return y0 + (step - x0) / (x1 - x0) * (y1 - y0)
        return self.points[-1][1]

    def __repr__(self) -> str:
        return f"PiecewiseSchedule({self.points}{', by epoch' if self.by_epoch else ''})"


_KINDS = {"constant": ConstantSchedule, "cosine": CosineSchedule, "piecewise": PiecewiseSchedule}


def build_schedule(spec: Schedule | float | int | Mapping[str, Any]) -> Schedule:
    """A schedule from a number (constant), a built one, or ``{"type": "constant" | "cosine" |
    "piecewise", ...}`` with that class's arguments."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return ConstantSchedule(spec)
    if not isinstance(spec, Mapping) or spec.get("type") not in _KINDS:
        raise ValueError(f"a schedule is a number or a dict with type one of {', '.join(_KINDS)}; got {spec!r}")
    options = {key: value for key, value in spec.items() if key != "type"}
    try:
        return _KINDS[spec["type"]](**options)
    except TypeError as error:
        raise ValueError(f"schedule {dict(spec)!r}: {error}") from None


def _start(schedule: Schedule) -> float:
    """The value at step 0 (a run-long cosine's start before its length is known)."""
    if isinstance(schedule, CosineSchedule) and schedule.length is None:
        return schedule.start
    return schedule(0, 1)


class ScheduledValues(nn.Module):
    """Named schedules and their current values: ``weights["feature"]`` is the value at the
    position last given to :meth:`set_progress` (step 0 until then). The values are a buffer, so
    a checkpoint holds them; they are recomputed from the iteration at every step anyway."""

    current: torch.Tensor

    def __init__(self, **schedules: Schedule | float | Mapping[str, Any]) -> None:
        super().__init__()
        self.schedules = {name: build_schedule(spec) for name, spec in schedules.items()}
        self.names = list(self.schedules)
        self.register_buffer("current", torch.tensor([_start(s) for s in self.schedules.values()], dtype=torch.float64))

    def set_progress(self, iteration: int, iters_per_epoch: int | None = None) -> None:
        values = [schedule(iteration, iters_per_epoch) for schedule in self.schedules.values()]
        self.current.copy_(torch.tensor(values, dtype=torch.float64))

    def __getitem__(self, name: str) -> float:
        if name not in self.schedules:
            raise KeyError(f"no scheduled value named {name!r}; known: {', '.join(self.names)}")
        return float(self.current[self.names.index(name)])

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={schedule!r}" for name, schedule in self.schedules.items())


def set_schedule_progress(model: nn.Module, iteration: int, iters_per_epoch: int | None = None) -> None:
    """Move every :class:`ScheduledValues` inside ``model`` to ``iteration`` (what the engine's
    ``LossWeightHook`` does before each training iteration)."""
    for module in model.modules():
        if isinstance(module, ScheduledValues):
            module.set_progress(iteration, iters_per_epoch)
