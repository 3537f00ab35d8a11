"""Targets: pixels, per-patch normalised pixels, a teacher's features, and named parts of several."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.base import Target
from maekit.nn.masking import masked_folds
from maekit.nn.teachers import Tap, Teacher
from maekit.ops import denorm_pix, norm_pix
from maekit.structures import Mask, Prediction, Tokens

__all__ = ["PixelTarget", "NormPixelTarget", "FeatureTarget", "NamedTargets", "FEATURE_NORMS", "normalize_features"]


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
    over each token's values, with the unbiased variance as ``torch.var`` computes it.

    ``per_channel`` normalises each channel of a patch on its own (BootMAE: per patch and channel,
    with ``unbiased=False`` and ``eps=1e-5``); channels are the fastest-varying axis of a token's
    values, as the patchifiers lay them out (``tokens.meta["in_chans"]``)."""

    def __init__(self, eps: float = 1e-6, unbiased: bool = True, per_channel: bool = False) -> None:
        super().__init__()
        self.eps, self.unbiased, self.per_channel = eps, unbiased, per_channel

    def _grouped(self, values: torch.Tensor, tokens: Tokens) -> torch.Tensor:
        """B×N×G×(values per group): one group per channel, or the whole token as one."""
        groups = int(tokens.meta.get("in_chans", 1)) if self.per_channel else 1
        return values.unflatten(-1, (-1, groups)).transpose(-1, -2)

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        return norm_pix(self._grouped(tokens.values, tokens), self.eps, self.unbiased).transpose(-1, -2).flatten(-2)

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        """Each token's own mean and variance put back, as the reference visualisation does."""
        if not isinstance(pred, torch.Tensor):
            raise TypeError(f"norm_pixels predicts one tensor per token, got {type(pred).__name__}")
        restored = denorm_pix(self._grouped(pred, tokens), self._grouped(tokens.values, tokens), self.eps, self.unbiased)
        return restored.transpose(-1, -2).flatten(-2)


def _layernorm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


#: Normalisations of feature targets, per token over the channels: "none"; "layernorm" (LayerNorm
#: without affine, eps 1e-6: BootMAE); "standardize" ((x − mean)/√(unbiased var + 1e-6): SdAE);
#: "l2" (unit length: DMAE, MILAN's cosine).
FEATURE_NORMS = {
    "none": lambda x: x,
    "layernorm": _layernorm,
    "standardize": lambda x: norm_pix(x, 1e-6),
    "l2": lambda x: F.normalize(x, dim=-1),
}


def normalize_features(x: torch.Tensor, norm: str) -> torch.Tensor:
    """``x`` (…×D) under one of :data:`FEATURE_NORMS`, in float32."""
    if norm not in FEATURE_NORMS:
        raise ValueError(f"feature norm must be one of {', '.join(FEATURE_NORMS)}, got {norm!r}")
    return FEATURE_NORMS[norm](x.float())


class FeatureTarget(Target):
    """A teacher's features of the same tokens, one row per token (B×N×D, in token order).

    ``tap``: where the teacher's features are read (a block index, before the final norm, or
    "output"). ``feed`` says what the teacher sees: "full" — every token (BootMAE's EMA encoder on
    the whole image); "folds" — the removed tokens, in the masker's order, split into ``num_folds``
    groups of ``fold_size`` that go through the teacher separately, each with its own prefix tokens
    (SdAE's multi-fold); rows of tokens the teacher did not see are zeros. ``norm`` is one of
    :data:`FEATURE_NORMS`, applied per token.
    """

    def __init__(self, teacher: Teacher | dict, tap: Tap = -1, norm: str = "none", feed: str = "full",
                 num_folds: int = 1, fold_size: int | None = None) -> None:
        super().__init__()
        from maekit.registry import build

        teacher = build("teacher", teacher)
        if not isinstance(teacher, Teacher):
            raise TypeError(f"FeatureTarget needs a Teacher, got {type(teacher).__name__}")
        if feed not in ("full", "folds"):
            raise ValueError(f"feature target feed must be 'full' or 'folds', got {feed!r}")
        normalize_features(torch.zeros(1, 2), norm)  # a typo'd norm fails when built
        self.teacher, self.tap, self.norm, self.feed = teacher, tap, norm, feed
        self.num_folds, self.fold_size = num_folds, fold_size
        self.needs_mask = feed == "folds"

    def forward(self, tokens: Tokens, batch: Any = None, mask: Mask | None = None) -> torch.Tensor:
        prefix = self.teacher.num_prefix_tokens
        if self.feed == "full":
            return normalize_features(self.teacher.features(tokens, self.tap)[:, prefix:], self.norm)
        if mask is None:
            raise ValueError("a feature target fed with folds of removed tokens needs the mask")
        ids = masked_folds(mask, self.num_folds, self.fold_size)  # B×F×S
        batch_size, folds, size = ids.shape
        seen = tokens.take(ids.flatten(1))
        groups = Tokens(values=seen.values.reshape(batch_size * folds, size, -1),
                        coords=seen.coords.reshape(batch_size * folds, size, -1), meta=tokens.meta)
        features = normalize_features(self.teacher.features(groups, self.tap)[:, prefix:], self.norm)
        features = features.reshape(batch_size, folds * size, -1)
        rows = torch.zeros(batch_size, tokens.num_tokens, features.shape[-1], dtype=features.dtype, device=features.device)
        return rows.scatter(1, ids.flatten(1).unsqueeze(-1).expand_as(features), features)

    def extra_repr(self) -> str:
        folds = f", {self.num_folds} folds of {self.fold_size or 'all'}" if self.feed == "folds" else ""
        return f"tap={self.tap!r}, norm={self.norm!r}, feed={self.feed!r}{folds}"


class NamedTargets(Target):
    """Several targets under names: the prediction and target are ``{name: B×N×D_name}``. Pictures
    come from the part named ``picture`` (e.g. the pixels beside a feature target)."""

    def __init__(self, targets: Mapping[str, Target | dict], picture: str | None = None) -> None:
        super().__init__()
        from maekit.registry import build

        self.parts: dict[str, Target] = nn.ModuleDict({name: build("target", spec) for name, spec in targets.items()})  # type: ignore[assignment]
        if picture is not None and picture not in self.parts:
            raise ValueError(f"picture part {picture!r} is not one of the targets {', '.join(self.parts)}")
        self.picture = picture
        self.needs_mask = any(part.needs_mask for part in self.parts.values())

    def forward(self, tokens: Tokens, batch: Any = None, mask: Mask | None = None) -> dict[str, Any]:
        return {name: part.for_pass(tokens, batch, mask) for name, part in self.parts.items()}

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        if self.picture is None or not isinstance(pred, dict):
            raise NotImplementedError("these named targets name no picture part")
        return self.parts[self.picture].to_values(pred[self.picture], tokens)
