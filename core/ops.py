"""Small pure tensor helpers that core and every plugin call: one copy of each.

- :func:`gather` picks tokens by index (the un-shuffle and the visible subset of the reference MAE).
- :func:`fill_mask_tokens` appends a mask token for every removed token and un-shuffles.
- :func:`norm_pix` / :func:`denorm_pix` are the per-token normalisation of the reference MAE's
  ``norm_pix_loss`` and its inverse (used to turn a prediction back into pixels for pictures).
- :func:`masked_mean` is the reference reduction ``(x·w).sum() / w.sum()``.
- :func:`init_mae_weights` and :func:`init_trunc_normal_weights` are the two weight inits the
  references use (MAE's xavier-uniform; Point-MAE's / timm's truncated normal).
- :func:`split_pair` splits a batch of pairs (SiamMAE's frames, TinyMIM's views) into its halves.

Imports torch only.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["gather", "fill_mask_tokens", "norm_pix", "denorm_pix", "masked_mean", "init_mae_weights",
           "init_trunc_normal_weights", "split_pair"]


def gather(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Pick tokens ``ids`` (B×K) out of ``x`` (B×N×...) along dim 1."""
    index = ids.reshape(*ids.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)


def fill_mask_tokens(visible: torch.Tensor, ids_restore: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
    """Visible tokens (B×K×D) plus ``mask_token`` for every removed one, un-shuffled into token
    order by ``ids_restore`` (B×N): B×N×D, the reference MAE decoder's first step."""
    batch, length = ids_restore.shape
    fill = mask_token.to(visible.dtype).expand(batch, length - visible.shape[1], -1)
    return gather(torch.cat([visible, fill], dim=1), ids_restore)


def _moments(values: torch.Tensor, unbiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return values.mean(dim=-1, keepdim=True), values.var(dim=-1, unbiased=unbiased, keepdim=True)


def _scale(var: torch.Tensor, eps: float, eps_in_sqrt: bool) -> torch.Tensor:
    return (var + eps) ** 0.5 if eps_in_sqrt else var ** 0.5 + eps


def norm_pix(values: torch.Tensor, eps: float = 1e-6, unbiased: bool = True, eps_in_sqrt: bool = True) -> torch.Tensor:
    """Each token's values (last dim) standardised: (x − mean) / √(var + eps). The reference MAE and
    MultiMAE use ``torch.var``'s default, the unbiased variance; ``unbiased=False`` is the biased one.
    ``eps_in_sqrt=False``: (x − mean) / (√var + eps), as VideoMAE."""
    mean, var = _moments(values, unbiased)
    return (values - mean) / _scale(var, eps, eps_in_sqrt)


def denorm_pix(normalised: torch.Tensor, values: torch.Tensor, eps: float = 1e-6, unbiased: bool = True,
               eps_in_sqrt: bool = True) -> torch.Tensor:
    """The inverse of :func:`norm_pix` with the moments of ``values`` (the tokens the normalised
    ones came from): how the reference visualisation maps a norm-pix prediction back to pixels."""
    mean, var = _moments(values, unbiased)
    return normalised * _scale(var, eps, eps_in_sqrt) + mean


def masked_mean(values: torch.Tensor, weights: torch.Tensor, dim: int | tuple[int, ...] | None = None,
                keepdim: bool = False, empty: float | None = None) -> torch.Tensor:
    """``(values·weights).sum(dim) / weights.sum(dim)`` (all dims when ``dim`` is None; ``weights``
    broadcast to ``values``). Where the weights sum to zero the result is nan (0/0), or ``empty``
    when given, with a finite gradient."""
    weights = weights.to(values.dtype)
    dims = tuple(range(values.dim())) if dim is None else dim
    total = (values * weights).sum(dims, keepdim=keepdim)
    count = torch.broadcast_to(weights, values.shape).sum(dims, keepdim=keepdim)
    if empty is None:
        return total / count
    has_any = count > 0
    return torch.where(has_any, total / torch.where(has_any, count, torch.ones_like(count)), torch.full_like(total, empty))


def init_mae_weights(module: nn.Module) -> None:
    """The reference MAE init (``module.apply(init_mae_weights)``): Linear xavier-uniform with zero
    bias, LayerNorm weight 1 and bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_trunc_normal_weights(module: nn.Module, std: float = 0.02) -> None:
    """Point-MAE's (and timm's) init: truncated-normal Linear and Conv1d weights (std 0.02), zero
    biases, LayerNorm 1/0."""
    if isinstance(module, (nn.Linear, nn.Conv1d)):
        nn.init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def split_pair(batch: object, dim: int, expected: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves along ``dim`` of a batch of pairs (``batch["inputs"]`` or the tensor itself),
    which must be 5-D with 2 there; otherwise a ValueError ``"<expected>, got <shape>"``."""
    inputs = batch["inputs"] if isinstance(batch, Mapping) else batch
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 5 or inputs.shape[dim] != 2:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"{expected}, got {shape}")
    return inputs.select(dim, 0), inputs.select(dim, 1)
