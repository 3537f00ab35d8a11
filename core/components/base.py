"""The six kinds of step every masked-modelling method is made of.

A method composes one of each (see :class:`maekit.model.MaskedAutoencoder`). The signatures here
are the contract between components; a plugin's component subclasses the matching base.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from maekit.structures import Mask, Tokens

__all__ = ["Patchifier", "Masker", "Encoder", "Decoder", "Target", "Loss"]


class Patchifier(nn.Module):
    """Turns a batch into :class:`Tokens` (raw per-token values and their coordinates)."""

    def forward(self, batch: Any) -> Tokens:
        raise NotImplementedError

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        """Inverse of :meth:`forward` for per-token values (B×N×D), where the modality has one."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")


class Masker(nn.Module):
    """Chooses the visible tokens; ``noise`` (B×N) makes the choice deterministic."""

    def forward(self, tokens: Tokens, noise: torch.Tensor | None = None) -> Mask:
        raise NotImplementedError


class Encoder(nn.Module):
    """Encodes visible tokens into latents B×(P+K)×D, P prefix tokens (e.g. cls) first."""

    embed_dim: int
    num_prefix_tokens: int

    def forward(self, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError


class Decoder(nn.Module):
    """Predicts every token (B×N×Dt) from the latents of the visible ones and the mask."""

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError


class Target(nn.Module):
    """What the decoder must predict for each token (B×N×Dt)."""

    def forward(self, tokens: Tokens, batch: Any) -> torch.Tensor:
        raise NotImplementedError


class Loss(nn.Module):
    """Compares prediction and target under the mask: ``{"loss": total, "<term>": value, ...}``."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: Mask) -> dict[str, torch.Tensor]:
        raise NotImplementedError
