"""Masked reconstruction losses: per-token error, averaged over removed tokens only."""
from __future__ import annotations

import torch

from maekit.nn.base import Loss
from maekit.structures import Mask, Prediction

__all__ = ["MaskedMSELoss", "MaskedL1Loss", "MaskedReconstructionLoss"]


class MaskedReconstructionLoss(Loss):
    """Mean over the token's values of an element-wise error, then the mean over removed tokens
    ((loss·mask).sum() / mask.sum(), the reference reduction). ``reduction="all"`` averages over
    every token instead; a batch with no removed token also falls back to every token.

    Returns ``{"loss": weight·value, name: value}``. A loss that weighs tokens otherwise
    overrides :meth:`token_weights`.
    """

    def __init__(self, name: str = "reconstruction", weight: float = 1.0, reduction: str = "removed") -> None:
        super().__init__()
        if reduction not in ("removed", "all"):
            raise ValueError(f"loss reduction must be 'removed' or 'all', got {reduction!r}")
        self.name, self.weight, self.reduction = name, weight, reduction

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def token_weights(self, mask: Mask) -> torch.Tensor:
        """Each token's weight (B×N) in the mean: 1 for removed tokens (or every token, see above)."""
        weights = mask.masked.float()
        if self.reduction == "all":
            return torch.ones_like(weights)
        return torch.where(weights.sum() > 0, weights, torch.ones_like(weights))

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError(f"{type(self).__name__} compares one tensor per token; got {type(pred).__name__} "
                            f"and {type(target).__name__} (a method with named parts needs a loss for them)")
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        per_token = self.elementwise(pred.float(), target.float()).mean(dim=-1)
        weights = self.token_weights(mask).to(per_token.dtype)
        value = (per_token * weights).sum() / weights.sum()
        return {"loss": self.weight * value, self.name: value}


class MaskedMSELoss(MaskedReconstructionLoss):
    """Squared error per value, averaged per token, then over removed tokens (reference MAE loss)."""

    def __init__(self, name: str = "mse", weight: float = 1.0, reduction: str = "removed") -> None:
        super().__init__(name, weight, reduction)

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target) ** 2


class MaskedL1Loss(MaskedReconstructionLoss):
    """Absolute error per value, averaged per token, then over removed tokens."""

    def __init__(self, name: str = "l1", weight: float = 1.0, reduction: str = "removed") -> None:
        super().__init__(name, weight, reduction)

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()
