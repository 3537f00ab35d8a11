"""Plots people would rather look at than read: a run's loss curves, a probe's confusion matrix,
and ``maekit compare``'s loss curves on one axis and accuracy against budget.

matplotlib is the one plotting dependency; figures are drawn with its Agg canvas (no pyplot, no
global state, no display) and written atomically like every other file maekit writes.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from maekit.io.checkpoint import write_bytes

__all__ = ["smooth", "loss_curve_png", "confusion_matrix_png", "curves_png", "accuracy_vs_budget_png"]

# logged values that are not losses (learning rate, timings, throughput): left out of loss curves
NOT_A_LOSS = ("lr", "base_lr", "momentum", "time", "data_time", "samples_per_s", "grad_norm", "teacher_momentum")


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_bytes(Path(path), buffer.getvalue())


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average over ``window`` values (shorter at the start), NaNs ignored."""
    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    # running sums of the finite values and their count: each window in O(1), not O(window) —
    # a long run's curve (a window of thousands) is redrawn at every checkpoint
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, array, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    end = np.arange(1, len(array) + 1)
    start = np.maximum(0, end - window)
    count = counts[end] - counts[start]
    return np.where(count > 0, (sums[end] - sums[start]) / np.maximum(count, 1), np.nan)


def _log_scale_fits(series: Sequence[np.ndarray]) -> bool:
    """A log y axis when every value is positive and they span more than a decade."""
    values = np.concatenate([s[np.isfinite(s)] for s in series]) if series else np.array([])
    return bool(len(values)) and values.min() > 0 and values.max() / values.min() > 10


def loss_curve_png(iterations: Sequence[int], terms: Mapping[str, Sequence[float]], path: str | Path,
                   title: str = "training loss") -> Path:
    """Each logged term against the iteration: the raw values faint, a moving average (a fiftieth of
    the run) drawn over them; ``loss`` (the optimised total) first and thickest."""
    figure = _figure()
    axis = figure.add_subplot()
    window = max(1, len(iterations) // 50)
    # a term equal to the total (a method with one loss: loss = mse) would hide it: drawn once
    names = [n for n in sorted(terms, key=lambda name: (name != "loss", name))
             if n == "loss" or "loss" not in terms or not np.array_equal(terms[n], terms["loss"], equal_nan=True)]
    for index, name in enumerate(names):
        values = np.asarray(terms[name], dtype=np.float64)
        line, = axis.plot(iterations, smooth(values, window), linewidth=2.0 if name == "loss" else 1.2, label=name,
                          color=f"C{index % 10}", zorder=3)
        if window > 1:
            axis.plot(iterations, values, linewidth=0.6, alpha=0.25, color=line.get_color(), zorder=2)
    if _log_scale_fits([np.asarray(terms[n], dtype=np.float64) for n in names]):
        axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_ylabel("value" + (f" (moving average of {window})" if window > 1 else ""))
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _save(figure, path)


def confusion_matrix_png(matrix: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Counts of true class (rows) against predicted class (columns), each cell shaded by its share
    of the row and labelled with the count."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.5 * len(classes) + 2.0)
    figure = _figure(size + 1.0, size)
    axis = figure.add_subplot()
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            axis.text(column, row, str(int(matrix[row, column])), ha="center", va="center", fontsize="x-small",
                      color="white" if shares[row, column] > 0.6 else "black")
    ticks = range(len(classes))
    axis.set_xticks(ticks, list(classes), rotation=45, ha="right", fontsize="small")
    axis.set_yticks(ticks, list(classes), fontsize="small")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title or f"accuracy {np.trace(matrix) / max(matrix.sum(), 1):.3f}")
    figure.colorbar(image, ax=axis, label="share of the true class")
    return _save(figure, path)


def curves_png(curves: Mapping[str, Sequence[tuple[Sequence[int], Sequence[float]]]], path: str | Path,
               title: str, ylabel: str = "loss") -> Path:
    """Several methods' curves on one axis: per method, the mean over its runs (seeds) as a line and
    the spread (min to max) shaded; each run a moving average of a fiftieth of its length."""
    figure = _figure(7.0, 4.4)
    axis = figure.add_subplot()
    drawn = []
    for index, (name, runs) in enumerate(curves.items()):
        length = min(len(values) for _, values in runs)
        if length == 0:
            continue
        iterations = np.asarray(runs[0][0][:length])
        window = max(1, length // 50)
        stacked = np.stack([smooth(values[:length], window) for _, values in runs])
        colour = f"C{index % 10}"
        axis.plot(iterations, stacked.mean(0), color=colour, linewidth=1.6, label=f"{name} ({len(runs)} run"
                  + ("s)" if len(runs) > 1 else ")"))
        if len(runs) > 1:
            axis.fill_between(iterations, stacked.min(0), stacked.max(0), color=colour, alpha=0.2, linewidth=0)
        drawn.append(stacked)
    if drawn and _log_scale_fits([s.ravel() for s in drawn]):
        axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _save(figure, path)


def accuracy_vs_budget_png(points: Mapping[str, Mapping[int, Sequence[float]]], path: str | Path, title: str,
                           ylabel: str = "accuracy") -> Path:
    """Per method, the accuracy at each budget (iterations): mean over seeds with ± one standard
    deviation as error bars."""
    figure = _figure(7.0, 4.4)
    axis = figure.add_subplot()
    for index, (name, by_budget) in enumerate(points.items()):
        budgets = sorted(by_budget)
        means = [float(np.mean(by_budget[b])) for b in budgets]
        spreads = [float(np.std(by_budget[b])) if len(by_budget[b]) > 1 else 0.0 for b in budgets]
        axis.errorbar(budgets, means, yerr=spreads, marker="o", capsize=3, color=f"C{index % 10}", label=name)
    axis.set_xlabel("pre-training iterations")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    if all(len(b) == 1 for b in points.values()):  # one budget: spread the methods' labels along x instead
        axis.margins(x=0.5)
    return _save(figure, path)

