"""The six kinds of step every masked-modelling method is made of.

A method composes one of each (see :class:`maekit.model.MaskedAutoencoder`). The signatures here
are the contract between components; a plugin's component subclasses the matching base.
"""
from __future__ import annotations

from typing import Any, Callable, Union

import torch
from torch import nn

from maekit.structures import Mask, Prediction, Tokens

__all__ = ["Patchifier", "Masker", "Encoder", "Decoder", "Target", "Loss", "NoiseSource"]

#: Masking noise as a masker receives it: a tensor of the masker's ``noise_shape(tokens)``, a
#: callable ``noise(shape, device)`` that makes one (maekit's trainer passes one seeded per
#: sample, so a resumed run masks alike), or None (drawn by the masker).
NoiseSource = Union[torch.Tensor, Callable[[tuple[int, ...], torch.device], torch.Tensor], None]


def own_parameters(module: nn.Module) -> set[str]:
    """Names of the parameters ``module`` holds itself (not through a submodule)."""
    return {name for name, _ in module.named_parameters(recurse=False)}


class Patchifier(nn.Module):
    """Turns a batch into :class:`Tokens` (raw per-token values and their coordinates)."""

    def forward(self, batch: Any) -> Tokens:
        raise NotImplementedError

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        """Inverse of :meth:`forward` for per-token values (B×N×D), where the modality has one."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")


class Masker(nn.Module):
    """Chooses the visible tokens; ``noise`` of :meth:`noise_shape` makes the choice deterministic."""

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        """The shape of the uniform noise this masker draws from: one number per token (B×N) here;
        a masker deciding per sample (one corruption per image) or per group says so."""
        return (tokens.batch_size, tokens.num_tokens)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        raise NotImplementedError


class Encoder(nn.Module):
    """Encodes visible tokens into latents B×(P+K)×D, P prefix tokens (e.g. cls) first."""

    embed_dim: int
    num_prefix_tokens: int

    def forward(self, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Names of parameters (relative to this module) that take no weight decay, as timm's
        modules declare them; the optimiser asks every module (norms and biases are found by
        shape). Here: its own class token and position table; a module with others overrides."""
        return own_parameters(self) & {"cls_token", "pos_embed"}


class Decoder(nn.Module):
    """Predicts every token (B×N×Dt, or named parts) from the latents of the visible ones and the mask."""

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> Prediction:
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """As :meth:`Encoder.no_weight_decay`: its own mask and class tokens and position table."""
        return own_parameters(self) & {"mask_token", "cls_token", "pos_embed"}


class Target(nn.Module):
    """What the decoder must predict for each token (B×N×Dt, or named parts).

    A target that depends on which tokens were removed (a teacher fed the removed tokens) sets
    ``needs_mask = True`` and takes ``forward(tokens, batch, mask)``."""

    needs_mask: bool = False

    def forward(self, tokens: Tokens, batch: Any) -> Prediction:
        raise NotImplementedError

    def for_pass(self, tokens: Tokens, batch: Any, mask: Mask | None) -> Prediction:
        """The target in a pass: the mask is handed on only to a target that reads it."""
        return self(tokens, batch, mask) if self.needs_mask else self(tokens, batch)

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        """A prediction of this target turned back into token values (B×N×D, like
        ``tokens.values``) for pictures: the inverse of :meth:`forward` where it has one."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse to token values")


class Loss(nn.Module):
    """Compares prediction and target under the mask: ``{"loss": total, "<term>": value, ...}``."""

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        raise NotImplementedError
