"""MMAE's evaluation: the RGB-only encoder with few labels — class-balanced subsets of N labels
in stratified folds, a linear probe and k-NN (k = 10, 20) on frozen features, mean ± std over
folds — and the labelled subset as a dataset, for few-label fine-tuning with ``maekit finetune``."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["balanced_subset", "LabelSubset", "few_label_evaluation"]


def _labels_of(dataset: Dataset) -> np.ndarray:
    if hasattr(dataset, "labels"):
        return np.asarray(dataset.labels)
    if hasattr(dataset, "samples"):
        return np.asarray([label for _, label in dataset.samples])
    return np.asarray([dataset[i]["label"] for i in range(len(dataset))])


def balanced_subset(labels: np.ndarray, num_labels: int, fold: int = 0, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Indices of ``num_labels`` samples, ``num_labels / classes`` from each class, drawn from the
    ``fold``-th of ``folds`` disjoint stratified parts of the data (scikit-learn's
    ``StratifiedKFold``, shuffled with ``seed``), so the folds' subsets never share a sample."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if (labels < 0).any():
        raise ValueError("few-label evaluation needs labelled data: some samples have no label (-1)")
    classes = np.unique(labels)
    if num_labels % len(classes):
        raise ValueError(f"{num_labels} labels cannot be split evenly over {len(classes)} classes")
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in [0, {folds}), got {fold}")
    per_class = num_labels // len(classes)
    part = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels))[fold][1]
    rng = np.random.default_rng(seed + fold)
    chosen = []
    for label in classes:
        members = part[labels[part] == label]
        if len(members) < per_class:
            raise ValueError(f"class {label} has {len(members)} samples in fold {fold} of {folds}; "
                             f"{per_class} needed for {num_labels} labels (use fewer labels or folds)")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


class LabelSubset(Dataset):
    """A class-balanced few-label subset of a dataset (see :func:`balanced_subset`), registered as
    the dataset ``pathology_label_subset`` for few-label fine-tuning."""

    def __init__(self, dataset: Dataset | dict, num_labels: int = 100, fold: int = 0, folds: int = 5,
                 seed: int = 0) -> None:
        from maekit.registry import build

        self.dataset = build("dataset", dataset)
        self.indices = balanced_subset(_labels_of(self.dataset), num_labels, fold, folds, seed)
        self.classes = getattr(self.dataset, "classes", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[int(self.indices[index])]


def few_label_evaluation(model: torch.nn.Module, train: Dataset, test: Dataset, transform: Any = None,
                         label_counts: Sequence[int] = (100, 1000), folds: int = 5, ks: Sequence[int] = (10, 20),
                         pool: str = "mean", seed: int = 0) -> dict[str, Any]:
    """For each label count: per fold a balanced subset of ``train``, a logistic-regression probe
    and cosine k-NN on its frozen RGB features, accuracy on all of ``test``; mean and std over the
    folds. Features come from one encoder pass over each dataset."""
    from maekit.eval.probe import knn_accuracy, linear_probe, pooled_features

    train_features, train_y = pooled_features(model, train, transform, pools=(pool,))
    test_features, test_y = pooled_features(model, test, transform, pools=(pool,))
    train_x, test_x = train_features[pool], test_features[pool]
    results: dict[str, Any] = {"pool": pool, "folds": folds}
    for count in label_counts:
        scores: dict[str, list[float]] = {"linear": [], **{f"knn{k}": [] for k in ks}}
        for fold in range(folds):
            chosen = balanced_subset(train_y, count, fold, folds, seed)
            scores["linear"].append(linear_probe(train_x[chosen], train_y[chosen], test_x, test_y))
            for k in ks:
                scores[f"knn{k}"].append(knn_accuracy(train_x[chosen], train_y[chosen], test_x, test_y, k=k))
        for name, values in scores.items():
            results[f"{name}_{count}_labels_mean"] = float(np.mean(values))
            results[f"{name}_{count}_labels_std"] = float(np.std(values))
    return results
