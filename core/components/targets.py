"""Reconstruction targets: pixels and per-patch normalised pixels."""
from __future__ import annotations

from typing import Any

import torch

from maekit.components.base import Target
from maekit.structures import Tokens

__all__ = ["PixelTarget", "NormPixelTarget"]


class PixelTarget(Target):
    """The token values themselves (patchified, already normalised image): ``norm_pix_loss=False``."""

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        return tokens.values


class NormPixelTarget(Target):
    """Per-patch normalised pixels of the reference (``norm_pix_loss=True``): (x − mean) / √(var + eps)
    over each token's values, with the unbiased variance as ``torch.var`` computes it."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        values = tokens.values
        mean = values.mean(dim=-1, keepdim=True)
        var = values.var(dim=-1, keepdim=True)
        return (values - mean) / (var + self.eps) ** 0.5
