"""Targets: pixels, per-patch normalised pixels, a teacher's features, and named parts of several."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.base import Target
from maekit.nn.masking import masked_folds
from maekit.nn.patchify import unpatchify
from maekit.nn.teachers import Tap, Teacher
from maekit.nn.tokenizers import batch_view
from maekit.ops import denorm_pix, norm_pix
from maekit.structures import Mask, Prediction, Tokens

__all__ = ["PixelTarget", "NormPixelTarget", "HOGTarget", "hog_cells", "FeatureTarget", "NamedTargets", "TokenTarget", "FEATURE_NORMS", "normalize_features"]


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
    with ``unbiased=False`` and ``eps=1e-5``; VideoMAE per cube and channel); channels are the
    fastest-varying axis of a token's values, as the patchifiers lay them out
    (``tokens.meta["in_chans"]``). ``eps_in_sqrt=False`` divides by √var + eps (VideoMAE).
    ``pixel_mean``/``pixel_std`` (per channel) first undo the input normalisation, as VideoMAE
    computes its target from [0, 1] pixels."""

    def __init__(self, eps: float = 1e-6, unbiased: bool = True, per_channel: bool = False, eps_in_sqrt: bool = True,
                 pixel_mean: Sequence[float] | None = None, pixel_std: Sequence[float] | None = None) -> None:
        super().__init__()
        if (pixel_mean is None) != (pixel_std is None):
            raise ValueError("give both pixel_mean and pixel_std (to undo the input normalisation) or neither")
        self.eps, self.unbiased, self.per_channel, self.eps_in_sqrt = eps, unbiased, per_channel, eps_in_sqrt
        self.pixel_stats = None if pixel_mean is None else (tuple(pixel_mean), tuple(pixel_std or ()))

    def _grouped(self, values: torch.Tensor, tokens: Tokens) -> torch.Tensor:
        """B×N×G×(values per group): one group per channel, or the whole token as one."""
        groups = int(tokens.meta.get("in_chans", 1)) if self.per_channel else 1
        return values.unflatten(-1, (-1, groups)).transpose(-1, -2)

    def _ungrouped(self, values: torch.Tensor) -> torch.Tensor:
        return values.transpose(-1, -2).flatten(-2)

    def _channel_stats(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.pixel_stats is not None
        mean, std = (torch.tensor(stat, dtype=values.dtype, device=values.device) for stat in self.pixel_stats)
        repeat = values.shape[-1] // len(mean)  # channel fastest: the statistics tile along the token
        return mean.repeat(repeat), std.repeat(repeat)

    def pixels(self, tokens: Tokens) -> torch.Tensor:
        """The token values the target is computed from: as given, or with the input normalisation undone."""
        if self.pixel_stats is None:
            return tokens.values
        mean, std = self._channel_stats(tokens.values)
        return tokens.values * std + mean

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        normalised = norm_pix(self._grouped(self.pixels(tokens), tokens), self.eps, self.unbiased, self.eps_in_sqrt)
        return self._ungrouped(normalised)

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        """Each token's own mean and variance put back, as the reference visualisation does."""
        if not isinstance(pred, torch.Tensor):
            raise TypeError(f"norm_pixels predicts one tensor per token, got {type(pred).__name__}")
        restored = self._ungrouped(denorm_pix(self._grouped(pred, tokens), self._grouped(self.pixels(tokens), tokens),
                                              self.eps, self.unbiased, self.eps_in_sqrt))
        if self.pixel_stats is None:
            return restored
        mean, std = self._channel_stats(restored)
        return (restored - mean) / std


def hog_cells(images: torch.Tensor, nbins: int = 9, cell: int = 8) -> torch.Tensor:
    """Histograms of oriented gradients exactly as MaskFeat's ``HOGLayerC`` (SlowFast; not
    scikit-image's ``hog``): per channel, reflect-padded Sobel gradients gx ([[1,0,−1],[2,0,−2],
    [1,0,−1]]) and gy (its transpose), magnitude √(gx²+gy²) voted into bin ⌊atan2(gx, gy)/π·nbins⌋
    mod nbins (unsigned: opposite gradients share a bin), summed over cell×cell pixels, each
    cell's nbins L2-normalised; no Gaussian window. (B, C, H, W) → (B, C, nbins, H/cell, W/cell)."""
    channels = images.shape[1]
    kernel_x = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=images.device)
    kernel_x = kernel_x.view(1, 1, 3, 3).repeat(channels, 1, 1, 1)
    padded = F.pad(images.float(), (1, 1, 1, 1), mode="reflect")
    gx = F.conv2d(padded, kernel_x, groups=channels)
    gy = F.conv2d(padded, kernel_x.transpose(2, 3), groups=channels)
    magnitude = torch.stack([gx, gy], dim=-1).norm(dim=-1)
    bins = torch.floor(torch.atan2(gx, gy) / math.pi * nbins).long() % nbins
    batch, _, height, width = magnitude.shape
    votes = magnitude.new_zeros(batch, channels, nbins, height, width)
    votes.scatter_add_(2, bins.unsqueeze(2), magnitude.unsqueeze(2))
    cells = votes.unfold(3, cell, cell).unfold(4, cell, cell).sum(dim=(-1, -2))
    return F.normalize(cells, p=2, dim=2)


class HOGTarget(Target):
    """MaskFeat's target: :func:`hog_cells` of the (normalised) input per token — for a p×q patch
    the (p/cell)·(q/cell) cells of each channel's nbins, ordered (channel·nbins + bin) major, cell
    row, cell column minor (108 values for 16×16 RGB patches and 8-pixel cells), as the
    reference's unfold. Space-time cubes take the HOG of their first frame (MaskFeat: frames 0, 2,
    … of a 16-frame clip with 2-frame cubes). No inverse: pictures show input and mask only."""

    def __init__(self, nbins: int = 9, cell: int = 8) -> None:
        super().__init__()
        self.nbins, self.cell = nbins, cell

    def frames(self, tokens: Tokens) -> tuple[torch.Tensor, int]:
        """The images the HOG is taken of ((B·t), C, H, W) and t (1 for images)."""
        meta = tokens.meta
        if "grid_size" not in meta or "patch_size" not in meta or "in_chans" not in meta:
            raise ValueError("a HOG target needs image patches or cubes (meta grid_size, patch_size, in_chans)")
        (p, q), channels, grid = meta["patch_size"], meta["in_chans"], tuple(meta["grid_size"])
        if p % self.cell or q % self.cell:
            raise ValueError(f"HOG cells of {self.cell} pixels must tile the {p}×{q} patches")
        values = tokens.values
        if len(grid) == 3:  # cubes (τ, p, q, c): keep the first frame of each
            frames, h, w = grid
            values = values.reshape(values.shape[0] * frames, h * w, meta["tubelet_size"], p * q * channels)[:, :, 0]
            grid = (h, w)
        else:
            frames = 1
        return unpatchify(values, grid, (p, q)), frames

    @torch.no_grad()
    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        images, frames = self.frames(tokens)
        cells = hog_cells(images, self.nbins, self.cell).flatten(1, 2)  # (B·t) × C·nbins × H/cell × W/cell
        p, q = tokens.meta["patch_size"]
        per_token = cells.permute(0, 2, 3, 1).unfold(1, p // self.cell, p // self.cell).unfold(2, q // self.cell, q // self.cell)
        per_token = per_token.flatten(3).flatten(1, 2)  # (B·t) × h·w × (C·nbins·cells)
        return per_token.reshape(tokens.batch_size, tokens.num_tokens, -1)

    def extra_repr(self) -> str:
        return f"nbins={self.nbins}, cell={self.cell}"


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
    :data:`FEATURE_NORMS`, applied per token. ``keep_prefix`` (feed "full" only): the prefix (cls)
    rows first, B×(P+N)×D (MimCo's image-level target is the teacher's cls output).
    """

    def __init__(self, teacher: Teacher | dict, tap: Tap = -1, norm: str = "none", feed: str = "full",
                 num_folds: int = 1, fold_size: int | None = None, keep_prefix: bool = False) -> None:
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
        if keep_prefix and feed != "full":
            raise ValueError("a feature target keeps the prefix rows only when the teacher sees every token (feed='full')")
        self.keep_prefix = bool(keep_prefix)

    def forward(self, tokens: Tokens, batch: Any = None, mask: Mask | None = None) -> torch.Tensor:
        prefix = self.teacher.num_prefix_tokens
        if self.feed == "full":
            first = 0 if self.keep_prefix else prefix
            return normalize_features(self.teacher.features(tokens, self.tap)[:, first:], self.norm)
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


class TokenTarget(Target):
    """Discrete ids B×N (long) for a vocabulary head: a tokenizer's ids of the batch's
    ``tokenizer.view`` images, row-major (BEiT, PeCo), or, with no tokenizer, the tokens' own ids
    (``tokens.values[..., 0]``: a patchifier that already tokenized, iGPT's palette pixels)."""

    def __init__(self, tokenizer: Any = None) -> None:
        super().__init__()
        from maekit.registry import build

        self.tokenizer = None if tokenizer is None else build("tokenizer", tokenizer)

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        if self.tokenizer is None:
            if tokens.values.is_floating_point() or tokens.values.shape[-1] != 1:
                raise ValueError(f"token_ids without a tokenizer reads ids from the tokens (B×N×1 integers); these "
                                 f"tokens hold {tuple(tokens.values.shape)} {tokens.values.dtype} values — give a tokenizer")
            return tokens.values[..., 0].long()
        view = self.tokenizer.view
        # the view by name, at the top or among the named views (BEiT's two views); a bare tensor
        # only for a tokenizer of the inputs themselves
        images = batch_view(batch, view)
        if not isinstance(images, torch.Tensor):
            holds = ", ".join(map(str, batch)) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(f"token_ids encodes the batch's images (batch[{view!r}] or batch['views'][{view!r}], "
                             f"as the tokenizer's view names them); the batch holds {holds}")
        ids = self.tokenizer.encode(images).flatten(1)
        if ids.shape[1] != tokens.num_tokens:
            raise ValueError(f"the tokenizer gives {ids.shape[1]} ids per image of batch[{view!r}] "
                             f"{tuple(images.shape[-2:])}, but there are {tokens.num_tokens} tokens: their grids must match")
        return ids
