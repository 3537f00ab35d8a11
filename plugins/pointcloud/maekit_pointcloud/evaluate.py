"""Shape classification from a (pre-trained) point encoder.

- **Fine-tuning** (:class:`PointClassifier`, through ``maekit finetune`` or ``maekit
  pointcloud-eval --protocol finetune``): Point-MAE's head — [class token (or the mean of the patch
  tokens when the encoder has none), max of the patch tokens] → Linear 256, BN, ReLU, Dropout 0.5
  → Linear 256, BN, ReLU, Dropout 0.5 → Linear(classes) — on top of the *whole* encoder with core's
  layer-wise learning-rate decay. (MAE3D's released fine-tuning keeps only the EdgeConv patch
  embedding and drops the transformer; keeping the encoder is what a masked autoencoder's
  fine-tuning means, so that is ours.)
- **Linear SVM** on frozen features (Point-MAE's ``evaluate_svm``: scikit-learn ``LinearSVC``,
  C = 1): features = [max, mean] of the patch tokens of the unmasked cloud; and core's logistic
  probe and k-NN (``maekit probe``) on the mean-pooled tokens.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from maekit.eval.finetune import Classifier

__all__ = ["PointClassifier", "point_classifier", "point_features", "svm_accuracy", "svm_evaluation"]


class PointClassifier(Classifier):
    """A point encoder with Point-MAE's classification head (``cls_head_finetune``)."""

    def __init__(self, patchifier: nn.Module, encoder: nn.Module, num_classes: int, hidden_dim: int = 256,
                 dropout: float = 0.5, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.patchifier, self.encoder = patchifier, encoder
        width = encoder.embed_dim
        self.head = nn.Sequential(
            nn.Linear(2 * width, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_classes))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def classify(self, batch: Any) -> torch.Tensor:
        tokens = self.encoder(self.patchifier(batch))
        prefix = self.encoder.num_prefix_tokens
        patches = tokens[:, prefix:]
        first = tokens[:, 0] if prefix else patches.mean(dim=1)
        return self.head(torch.cat([first, patches.amax(dim=1)], dim=-1))


def point_classifier(model: dict, num_classes: int, checkpoint: str | None = None, drop_path_rate: float = 0.1,
                     label_smoothing: float = 0.0, hidden_dim: int = 256, dropout: float = 0.5) -> PointClassifier:
    """The encoder of a (pre-trained) point-cloud method config + Point-MAE's head."""
    from maekit.eval.probe import load_trained_model

    method = load_trained_model({**model, "drop_path_rate": drop_path_rate}, checkpoint).train()
    return PointClassifier(method.patchifier, method.encoder, num_classes, hidden_dim, dropout, label_smoothing)


@torch.no_grad()
def point_features(model: nn.Module, dataset: Dataset, transform: Any = None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Frozen features [max, mean] of the patch tokens of each whole cloud, and the labels."""
    from maekit.data.views import TransformedView

    model.eval()
    device = next(model.parameters()).device
    prefix = model.encoder.num_prefix_tokens
    features, labels = [], []
    view = TransformedView(dataset, transform) if transform is not None else dataset
    batches = DataLoader(view, batch_size=batch_size)
    started = time.perf_counter()
    for number, batch in enumerate(batches, 1):
        patches = model.encode({"inputs": batch["inputs"].to(device)})[:, prefix:].float()
        features.append(torch.cat([patches.amax(dim=1), patches.mean(dim=1)], dim=-1).cpu().numpy())
        labels.append(np.asarray(batch["label"]))
        if time.perf_counter() - started > 5 and (number % 10 == 0 or number == len(batches)):  # long runs only
            logging.getLogger("maekit").info("features: %d/%d batches, %.0f s", number, len(batches),
                                             time.perf_counter() - started)
    return np.concatenate(features), np.concatenate(labels)


def svm_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 c: float = 1.0) -> float:
    """Accuracy of scikit-learn's ``LinearSVC(C=c)`` (Point-MAE's protocol) on the features."""
    from sklearn.svm import LinearSVC

    classifier = LinearSVC(C=c, max_iter=20000)
    classifier.fit(train_x, train_y)
    return float(classifier.score(test_x, test_y))


def svm_evaluation(model: nn.Module, train: Dataset, test: Dataset, transform: Any = None, c: float = 1.0) -> dict[str, Any]:
    """Linear-SVM accuracy of the frozen encoder's [max, mean] features: ``{"svm_accuracy", ...}``."""
    train_x, train_y = point_features(model, train, transform)
    test_x, test_y = point_features(model, test, transform)
    if (train_y < 0).any() or (test_y < 0).any():
        raise ValueError("the SVM evaluation needs labelled data: some clouds have no label (-1)")
    logging.getLogger("maekit").info("fitting the linear SVM on %d × %d features", *train_x.shape)
    skipped = {**getattr(train, "skipped_files", {}), **getattr(test, "skipped_files", {})}
    return {"svm_accuracy": svm_accuracy(train_x, train_y, test_x, test_y, c), "train_samples": len(train_y),
            "test_samples": len(test_y), "skipped_files": skipped}
