"""Action recognition from a (pre-trained) SkeletonMAE encoder, MAMP's two protocols.

- **Linear evaluation**: frozen encoder, features = mean over tokens and bodies, BatchNorm1d
  without affine + Linear, SGD (lr 0.1, momentum 0.9, no weight decay), batch 128, 100 epochs,
  cosine schedule. Features are computed once per clip from the evaluation crop (MAMP re-reads
  clips each epoch; with a frozen encoder and no augmentation the two are the same).
- **Fine-tuning** (:class:`SkeletonClassifier`, through ``maekit finetune`` / ``maekit
  skeleton-eval --protocol finetune``): MAMP's head — dropout 0.3, mean over time per joint,
  joints concatenated, mean over bodies, Linear → BatchNorm → ReLU → Linear — with core's layer-wise
  learning-rate decay.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from maekit.eval.finetune import Classifier

__all__ = ["SkeletonClassifier", "skeleton_classifier", "encoder_features", "linear_evaluation",
           "train_linear_head"]


class SkeletonClassifier(Classifier):
    """A skeleton encoder with MAMP's fine-tuning head (``ActionHeadFinetune``)."""

    def __init__(self, patchifier: nn.Module, encoder: nn.Module, num_classes: int, hidden_dim: int = 2048,
                 dropout: float = 0.3, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.patchifier, self.encoder = patchifier, encoder
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(encoder.embed_dim * patchifier.num_joints, hidden_dim)
        self.bn = nn.BatchNorm1d(hidden_dim)
        self.head = nn.Linear(hidden_dim, num_classes)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def classify(self, batch: Any) -> torch.Tensor:
        tokens = self.patchifier(batch)
        features = self.dropout(self.encoder(tokens))  # (N·M, T'·V, D)
        segments, joints = tokens.meta["grid_size"]
        bodies = tokens.meta["bodies"]
        per_joint = features.reshape(-1, bodies, segments, joints, features.shape[-1]).mean(dim=2)  # over time
        pooled = per_joint.flatten(2).mean(dim=1)  # joints concatenated, mean over bodies
        return self.head(torch.relu(self.bn(self.fc1(pooled))))


def skeleton_classifier(model: dict, num_classes: int, checkpoint: str | None = None, drop_path_rate: float = 0.0,
                        label_smoothing: float = 0.0, hidden_dim: int = 2048, dropout: float = 0.3) -> SkeletonClassifier:
    """The encoder of a (pre-trained) SkeletonMAE config + MAMP's fine-tuning head."""
    from maekit.eval.probe import load_trained_model

    method = load_trained_model({**model, "drop_path_rate": drop_path_rate}, checkpoint).train()
    return SkeletonClassifier(method.patchifier, method.encoder, num_classes, hidden_dim, dropout, label_smoothing)


@torch.no_grad()
def encoder_features(model: nn.Module, dataset: Dataset, transform: Any, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Frozen features (mean over tokens and bodies: the model's ``encode`` holds a sample's tokens
    of every body) and labels."""
    from maekit.data.views import TransformedView

    model.eval()
    features, labels = [], []
    for batch in DataLoader(TransformedView(dataset, transform), batch_size=batch_size):
        features.append(model.encode({"inputs": batch["inputs"]}).mean(dim=1).float().numpy())
        labels.append(np.asarray(batch["label"]))
    return np.concatenate(features), np.concatenate(labels)


def train_linear_head(train_x: np.ndarray, train_y: np.ndarray, num_classes: int, epochs: int = 100,
                      batch_size: int = 128, lr: float = 0.1, momentum: float = 0.9, seed: int = 0) -> nn.Module:
    """BatchNorm1d(affine=False) + Linear trained with SGD and a cosine schedule per step."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Sequential(nn.BatchNorm1d(train_x.shape[1], affine=False, eps=1e-6), nn.Linear(train_x.shape[1], num_classes))
    nn.init.trunc_normal_(head[1].weight, std=0.01)
    nn.init.zeros_(head[1].bias)
    x, y = torch.from_numpy(train_x).float(), torch.from_numpy(train_y).long()
    steps_per_epoch = max(1, -(-len(x) // batch_size))
    optimiser = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * steps_per_epoch)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            chosen = order[start:start + batch_size]
            if len(chosen) < 2:  # BatchNorm needs two samples
                continue
            loss = nn.functional.cross_entropy(head(x[chosen]), y[chosen])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return head.eval()


def linear_evaluation(model: nn.Module, train: Dataset, test: Dataset, transform: Any, num_classes: int | None = None,
                      epochs: int = 100, batch_size: int = 128, lr: float = 0.1, seed: int = 0) -> dict[str, float]:
    """MAMP's linear evaluation of ``model``'s frozen encoder: top-1 accuracy on ``test``."""
    train_x, train_y = encoder_features(model, train, transform)
    test_x, test_y = encoder_features(model, test, transform)
    if (train_y < 0).any() or (test_y < 0).any():
        raise ValueError("linear evaluation needs labelled data: some samples have no label (-1)")
    classes = num_classes or int(max(train_y.max(), test_y.max()) + 1)
    head = train_linear_head(train_x, train_y, classes, epochs, batch_size, lr, seed=seed)
    with torch.no_grad():
        predicted = head(torch.from_numpy(test_x).float()).argmax(1).numpy()
    return {"linear_accuracy": float((predicted == test_y).mean()), "train_samples": len(train_y),
            "test_samples": len(test_y)}
