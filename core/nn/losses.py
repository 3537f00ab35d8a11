"""Masked reconstruction losses: per-token error, averaged over removed tokens only; and a
weighted sum of losses over named parts of a prediction."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.base import Loss
from maekit.nn.schedules import Schedule, ScheduledValues
from maekit.ops import masked_mean
from maekit.structures import Mask, Prediction

__all__ = ["MaskedMSELoss", "MaskedL1Loss", "MaskedSmoothL1Loss", "MaskedReconstructionLoss", "NamedLosses",
           "MaskedCrossEntropyLoss"]


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
        """Each token's weight (B×N) in the mean: 1 for removed tokens (or every token, see above),
        times the mask's own ``weights`` when it has them; thrown tokens (``mask.thrown``) weigh 0."""
        counted = torch.ones_like(mask.masked.float()) if mask.thrown is None else (~mask.thrown).float()
        weights = mask.predicted.float()
        if self.reduction == "all":
            weights = counted
        weights = torch.where(weights.sum() > 0, weights, counted)
        return weights if mask.weights is None else weights * mask.weights.float()

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError(f"{type(self).__name__} compares one tensor per token; got {type(pred).__name__} "
                            f"and {type(target).__name__} (a method with named parts needs a loss for them)")
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        per_token = self.elementwise(pred.float(), target.float()).mean(dim=-1)
        weights = self.token_weights(mask).to(per_token.dtype)
        value = (per_token * weights).sum() / self.normaliser(mask, weights)
        return {"loss": self.weight * value, self.name: value}

    def normaliser(self, mask: Mask, weights: torch.Tensor) -> torch.Tensor:
        """What the weighted sum is divided by: the weights' sum (a weighted mean). BootMAE's
        centre-weighted loss divides by the removed-token count instead."""
        return weights.sum()


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


class MaskedSmoothL1Loss(MaskedReconstructionLoss):
    """Smooth L1 per value (``F.smooth_l1_loss``: 0.5·x²/β below β, |x| − 0.5·β above), averaged per
    token, then over removed tokens: with equal removed counts per sample, ``nn.SmoothL1Loss()`` of
    the removed tokens' rows (MVD's feature loss, β = 1)."""

    def __init__(self, name: str = "smooth_l1", weight: float = 1.0, reduction: str = "removed", beta: float = 1.0) -> None:
        super().__init__(name, weight, reduction)
        if not beta > 0:
            raise ValueError(f"smooth L1 beta must be positive, got {beta!r}")
        self.beta = beta

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.smooth_l1_loss(pred, target, reduction="none", beta=self.beta)


class NamedLosses(Loss):
    """One loss per named part of a prediction (``{name: tensor}``, as :class:`~maekit.nn.targets.
    NamedTargets` makes), summed with weights: numbers, or schedules (BootMAE ramps its feature
    term up over the first quarter of training). Returns every part's terms, each part's weight as
    ``<part>_weight`` when scheduled, and ``"loss"`` = Σ weight · part loss. ``mask``: one mask for
    every part, or one per part (``{name: Mask}``, the per-modality masks of an audio-visual model;
    a part without one gets ``None``)."""

    def __init__(self, losses: Mapping[str, Loss | dict], weights: Mapping[str, Schedule | float | Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        from maekit.registry import build

        self.parts = nn.ModuleDict({name: build("loss", spec) for name, spec in losses.items()})
        unknown = sorted(set(weights or {}) - set(self.parts))
        if unknown:
            raise ValueError(f"loss weights name {', '.join(unknown)}, which are not among the parts {', '.join(self.parts)}")
        self.weights = ScheduledValues(**{name: (weights or {}).get(name, 1.0) for name in self.parts})
        self.scheduled = [name for name in (weights or {}) if not isinstance(weights[name], (int, float))]  # type: ignore[index]

    def forward(self, pred: Prediction, target: Prediction, mask: Mask | Mapping[str, Mask]) -> dict[str, torch.Tensor]:
        if not isinstance(pred, dict) or not isinstance(target, dict):
            raise TypeError(f"NamedLosses compares named parts; got {type(pred).__name__} and {type(target).__name__}")
        if isinstance(mask, Mapping) and set(mask) - set(self.parts):
            raise ValueError(f"masks name {', '.join(sorted(set(mask) - set(self.parts)))}, which are not among the "
                             f"parts {', '.join(self.parts)}")
        out: dict[str, torch.Tensor] = {}
        total = None
        for name, loss in self.parts.items():
            terms = loss(pred[name], target[name], mask.get(name) if isinstance(mask, Mapping) else mask)
            weight = self.weights[name]
            out.update({key: value for key, value in terms.items() if key != "loss"})
            if name in self.scheduled:
                out[f"{name}_weight"] = terms["loss"].new_tensor(weight)
            total = weight * terms["loss"] if total is None else total + weight * terms["loss"]
        assert total is not None
        return {"loss": total, **out}


class MaskedCrossEntropyLoss(Loss):
    """Cross-entropy of vocabulary logits (B×N×V) against ids (B×N), over the removed tokens
    (``over="removed"``: BEiT, iGPT's BERT objective) or every token (``over="all"``: iGPT's
    autoregressive objective, which hides nothing). ``reduction="token_mean"`` averages over all
    counted tokens of the batch (BEiT); ``"image_mean"`` per image first, then over the images
    (iGPT; an image with no counted token is left out). Returns ``{"loss", name, name_accuracy}``
    (the accuracy of the arg-max over the counted tokens, not differentiated)."""

    def __init__(self, name: str = "cross_entropy", weight: float = 1.0, over: str = "removed",
                 reduction: str = "token_mean") -> None:
        super().__init__()
        if over not in ("removed", "all"):
            raise ValueError(f"cross-entropy 'over' must be 'removed' or 'all', got {over!r}")
        if reduction not in ("token_mean", "image_mean"):
            raise ValueError(f"cross-entropy reduction must be 'token_mean' (BEiT) or 'image_mean' (iGPT), got {reduction!r}")
        self.name, self.weight, self.over, self.reduction = name, weight, over, reduction

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor) or target.is_floating_point():
            raise TypeError("masked_cross_entropy compares logits B×N×V with integer ids B×N")
        if pred.dim() != 3 or pred.shape[:2] != target.shape:
            raise ValueError(f"logits {tuple(pred.shape)} and ids {tuple(target.shape)} cover different tokens")
        counted = (mask.predicted.float() if self.over == "removed"
                   else torch.ones(target.shape, dtype=torch.float32, device=pred.device))
        if mask.thrown is not None:  # thrown tokens count nowhere
            counted = counted * (~mask.thrown).float()
        if self.over == "all" and mask.thrown is None:  # every row counts: no gather
            per_token = F.cross_entropy(pred.float().flatten(0, 1), target.flatten(), reduction="none").view_as(target)
        else:  # the counted rows only (BEiT's 75 of 196 over 8192 ids): the others hold 0 and weigh nothing
            rows = counted.bool()
            per_token = pred.new_zeros(target.shape, dtype=torch.float32)
            per_token[rows] = F.cross_entropy(pred[rows].float(), target[rows], reduction="none")

        def reduce(values: torch.Tensor) -> torch.Tensor:  # 0 where nothing is counted
            if self.reduction == "token_mean":
                return masked_mean(values, counted, empty=0.0)
            per_image = masked_mean(values, counted, dim=1, empty=0.0)
            return masked_mean(per_image, counted.sum(1) > 0, empty=0.0)

        value = reduce(per_token)
        accuracy = reduce((pred.detach().argmax(-1) == target).float())
        return {"loss": self.weight * value, self.name: value, f"{self.name}_accuracy": accuracy}
