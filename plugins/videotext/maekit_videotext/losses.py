"""SimVTP's language and cross-modal terms, as core losses (``loss(pred, target, mask)``) so that
core's :class:`~maekit.nn.losses.NamedLosses` composes them with the masked video term by name."""
from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from maekit.nn.base import Loss
from maekit.nn.contrastive import PairContrastiveLoss, pair_contrastive_loss

__all__ = ["MaskedLanguageLoss", "VideoTextContrastiveLoss", "VideoTextMatchingLoss", "norm_softmax_loss"]


class MaskedLanguageLoss(Loss):
    """Cross-entropy of vocabulary logits (B×L×V) against labels (B×L, -100 where nothing was
    masked), averaged over the masked tokens of the batch (``nn.CrossEntropyLoss()``, SimVTP's MLM).
    Returns ``{"loss", "mlm", "mlm_accuracy"}``; 0 for a batch where no token was masked."""

    def __init__(self, name: str = "mlm") -> None:
        super().__init__()
        self.name = name

    def forward(self, pred: Any, target: Any, mask: Any = None) -> dict[str, torch.Tensor]:
        counted = target != -100
        if not counted.any():
            zero = pred.sum() * 0.0
            return {"loss": zero, self.name: zero.detach(), f"{self.name}_accuracy": zero.detach()}
        value = F.cross_entropy(pred.float().flatten(0, 1), target.flatten(), ignore_index=-100)
        accuracy = (pred.detach().argmax(-1) == target)[counted].float().mean()
        return {"loss": value, self.name: value, f"{self.name}_accuracy": accuracy}


def norm_softmax_loss(similarity: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimVTP's ``NormSoftmaxLoss``: −mean diag log_softmax(S/τ) over rows − the same over columns
    (the sum of the two directions, not their mean) for a cosine-similarity matrix S (texts × videos)."""
    return pair_contrastive_loss(similarity, temperature, "sum")


class VideoTextContrastiveLoss(PairContrastiveLoss):
    """Video–text contrast (VTC) on the batch's cosine-similarity matrix (texts × videos, pair i on
    the diagonal) at temperature ``temperature`` (SimVTP: 0.05), both directions summed; in-batch
    negatives of this process only, as the reference. ``target`` and ``mask`` are not read.
    Returns ``{"loss", "vtc", "vtc_accuracy"}`` (the share of texts whose own video scores highest)."""

    def __init__(self, temperature: float = 0.05, name: str = "vtc") -> None:
        super().__init__(temperature, "sum", name)


class VideoTextMatchingLoss(Loss):
    """Video–text matching (VTM): cross-entropy of the matching head's 2-way logits against labels
    (1 = the caption's own video, 0 = another video of the batch). Returns ``{"loss", "vtm", "vtm_accuracy"}``."""

    def __init__(self, name: str = "vtm") -> None:
        super().__init__()
        self.name = name

    def forward(self, pred: Any, target: Any, mask: Any = None) -> dict[str, torch.Tensor]:
        value = F.cross_entropy(pred.float(), target)
        accuracy = (pred.detach().argmax(1) == target).float().mean()
        return {"loss": value, self.name: value, f"{self.name}_accuracy": accuracy}
