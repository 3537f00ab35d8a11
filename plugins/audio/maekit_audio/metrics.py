"""Multi-label metrics of AudioSet evaluation (AST / Audio-MAE ``stats``): mean average precision."""
from __future__ import annotations

import numpy as np

__all__ = ["mean_average_precision"]


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes of scikit-learn's average precision of ``scores`` (B × C, any monotone
    scale: logits or probabilities) against multi-hot ``labels`` (B × C), as the reference computes
    it per class; classes with no positive in ``labels`` have no defined AP and are left out."""
    from sklearn.metrics import average_precision_score

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores and labels must both be (samples, classes), got {scores.shape} and {labels.shape}")
    present = labels.sum(axis=0) > 0
    if not present.any():
        raise ValueError("no class has a positive label: mAP is undefined")
    binary, scores = labels[:, present] > 0.5, scores[:, present]
    return float(np.mean([average_precision_score(binary[:, k], scores[:, k]) for k in range(binary.shape[1])]))
