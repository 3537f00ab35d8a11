"""The AU detection protocol shared by both methods: the AU sets, the 3-fold subject-exclusive
splits (JAA-Net / ME-GraphAU lists, folds named by their test part), per-AU F1 with unknown labels
left out, and the per-AU loss weights of JAA-Net / ME-GraphAU.

Labels are multi-hot rows over a dataset's AUs: 1 present, 0 absent, -1 unknown (BP4D's code 9).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["BP4D_AUS", "DISFA_AUS", "BP4D_PARTS", "DISFA_PARTS", "PARTS", "UNKNOWN", "fold_subjects", "au_f1",
           "f1_table", "au_weights", "check_labels"]

#: The 12 BP4D AUs and 8 DISFA AUs of the protocol.
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
#: A label a frame does not have (BP4D's "9 = not coded"): left out of that AU's loss and F1.
UNKNOWN = -1

#: The three subject parts; fold k tests on part k and trains on the other two.
BP4D_PARTS: tuple[tuple[str, ...], ...] = (
    ("F001", "M007", "F018", "F008", "F002", "M004", "F010", "F009", "M012", "M001", "F016", "M014", "F023", "M008"),
    ("M011", "F003", "M010", "M002", "F005", "F022", "M018", "M017", "F013", "M016", "F020", "F011", "M013", "M005"),
    ("F007", "F015", "F006", "F019", "M006", "M009", "F012", "M003", "F004", "F021", "F017", "M015", "F014"),
)
DISFA_PARTS: tuple[tuple[str, ...], ...] = (
    ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
    ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
    ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
)
PARTS: dict[str, tuple[tuple[str, ...], ...]] = {"bp4d": BP4D_PARTS, "disfa": DISFA_PARTS}


def fold_subjects(parts: Sequence[Sequence[str]], fold: int, split: str) -> tuple[str, ...]:
    """The subjects of ``split`` ("train", "test" or "all") in ``fold`` (1, 2 or 3: the fold is named
    by the part it tests on, because repositories number folds differently)."""
    if fold not in range(1, len(parts) + 1):
        raise ValueError(f"fold must be one of {list(range(1, len(parts) + 1))} (named by its test part), got {fold!r}")
    if split == "test":
        return tuple(parts[fold - 1])
    if split == "train":
        return tuple(s for k, part in enumerate(parts, 1) if k != fold for s in part)
    if split == "all":
        return tuple(s for part in parts for s in part)
    raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")


def check_labels(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    """Labels as an int array N×K of 1, 0 and -1 (unknown), or a clear error."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{what} must be N×K multi-hot rows (one column per AU), got shape {labels.shape}")
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1, UNKNOWN}:
        raise ValueError(f"{what} must hold 1 (present), 0 (absent) or -1 (unknown), found {sorted(values - {0, 1, -1})}")
    return labels.astype(np.int64)


def au_f1(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-AU F1 = 2PR/(P+R) of frame-level predictions ``scores >= threshold`` (probabilities,
    no threshold tuning) pooled over every frame, each AU over the frames whose label is known.
    An AU with no positive label and no positive prediction scores 0, as scikit-learn's
    ``f1_score(zero_division=0)``."""
    labels = check_labels(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    predicted = scores >= threshold
    known = labels != UNKNOWN
    present = labels == 1
    true_pos = (predicted & present & known).sum(axis=0)
    false_pos = (predicted & ~present & known).sum(axis=0)
    false_neg = (~predicted & present & known).sum(axis=0)
    denominator = 2 * true_pos + false_pos + false_neg
    return np.where(denominator > 0, 2 * true_pos / np.maximum(denominator, 1), 0.0)


def f1_table(scores: np.ndarray, labels: np.ndarray, aus: Sequence[int], threshold: float = 0.5) -> dict[str, float]:
    """``{"AU1": f1, ..., "avg_f1": mean}`` (F1 in %, as papers report it)."""
    per_au = au_f1(scores, labels, threshold)
    if len(aus) != len(per_au):
        raise ValueError(f"{len(per_au)} label columns for {len(aus)} AUs {list(aus)}")
    table = {f"AU{au}": round(100 * float(f), 2) for au, f in zip(aus, per_au)}
    table["avg_f1"] = round(100 * float(per_au.mean()), 2)
    return table


def au_weights(labels: np.ndarray) -> np.ndarray:
    """JAA-Net's per-AU loss weights (also ME-GraphAU's ``train_weight``): the inverse of each
    AU's occurrence rate over the known labels, rescaled to sum to K, so rare AUs weigh more. An
    AU never present gets the largest weight of the others (its rate would be 0)."""
    labels = check_labels(labels)
    known = labels != UNKNOWN
    rate = (labels == 1).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    inverse = np.where(rate > 0, 1.0 / np.maximum(rate, 1e-12), 0.0)
    if (inverse == 0).all():
        return np.ones(labels.shape[1])
    inverse = np.where(inverse > 0, inverse, inverse.max())
    return inverse / inverse.sum() * labels.shape[1]
