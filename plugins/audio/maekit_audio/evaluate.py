"""Frozen-feature evaluation of an audio encoder: mean-pooled patch tokens (the fine-tuning pool),
then a logistic-regression probe and k-NN (single-label: accuracy) or one-vs-rest logistic
regression (multi-label: mAP, AudioSet)."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["frozen_audio_evaluation"]


def frozen_audio_evaluation(model: Any, train_set: Any, test_set: Any, transform: Any, k: int = 20) -> dict[str, Any]:
    from maekit.eval.probe import knn_accuracy, linear_probe, pooled_features

    train, train_y = pooled_features(model, train_set, transform, pools=("mean",))
    test, test_y = pooled_features(model, test_set, transform, pools=("mean",))
    counts = {"train_samples": int(len(train_y)), "test_samples": int(len(test_y))}
    if train_y.ndim == 1:
        if (train_y < 0).any() or (test_y < 0).any():
            raise ValueError("frozen evaluation needs labelled data: some samples have no label (-1)")
        return {"linear_probe_accuracy": linear_probe(train["mean"], train_y, test["mean"], test_y),
                "knn_accuracy": knn_accuracy(train["mean"], train_y, test["mean"], test_y, k=k), **counts}
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from maekit_audio.metrics import mean_average_precision

    trainable = train_y.sum(axis=0) > 0  # a class with no training positive gets no classifier
    probe = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=2000)))
    probe.fit(train["mean"], train_y[:, trainable] > 0.5)
    scores = np.full(test_y.shape, -1e9)  # classes never seen in training rank last
    scores[:, trainable] = probe.decision_function(test["mean"])
    return {"linear_probe_mAP": mean_average_precision(scores, test_y), **counts}
