"""Reconstruction targets: pixels and per-patch normalised pixels."""
from __future__ import annotations

from typing import Any

import torch

from maekit.nn.base import Target
from maekit.ops import denorm_pix, norm_pix
from maekit.structures import Prediction, Tokens

__all__ = ["PixelTarget", "NormPixelTarget"]


class PixelTarget(Target):
    """The token values themselves (patchified, already normalised image): ``norm_pix_loss=False``."""

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        return tokens.values

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        if not isinstance(pred, torch.Tensor):
            raise TypeError(f"pixels predicts one tensor per token, got {type(pred).__name__}")
        return pred


class NormPixelTarget(Target):
    """Per-patch normalised pixels of the reference (``norm_pix_loss=True``): (x − mean) / √(var + eps)
    over each token's values, with the unbiased variance as ``torch.var`` computes it."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        return norm_pix(tokens.values, self.eps)

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        """Each token's own mean and variance put back, as the reference visualisation does."""
        if not isinstance(pred, torch.Tensor):
            raise TypeError(f"norm_pixels predicts one tensor per token, got {type(pred).__name__}")
        return denorm_pix(pred, tokens.values, self.eps)
