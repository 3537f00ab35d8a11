"""Occlusions as evaluation conditions and training corruption: random small patches and large
blocks drawn on the pixels, turned into a token :class:`~maekit.structures.Mask` (a patch counts
as occluded when more than ``threshold`` of its pixels are), and the visible tokens of such masks
batched with padding (rows keep different counts)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch

from maekit.nn.patchify import as_pair, patchify
from maekit.structures import Tokens

__all__ = ["PatchOcclusion", "BlockOcclusion", "build_occlusion", "occluded_tokens", "visible_with_padding", "AUCrop"]


class PatchOcclusion:
    """Random small patches: the image is cut into ``size``-pixel cells (default: the model's patch
    size) and ``⌊ratio · cells⌋`` cells per image, uniformly chosen, are occluded."""

    def __init__(self, ratio: float = 0.5, size: int | None = None) -> None:
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"patch occlusion ratio must be in [0, 1), got {ratio!r}")
        self.ratio, self.size = float(ratio), size

    def __call__(self, batch: int, height: int, width: int, patch: int, generator: torch.Generator) -> torch.Tensor:
        size = self.size or patch
        rows, cols = height // size, width // size
        if rows < 1 or cols < 1:
            raise ValueError(f"patch occlusion cells of {size} px do not fit a {height}×{width} image")
        count = int(self.ratio * rows * cols)
        order = torch.argsort(torch.rand(batch, rows * cols, generator=generator), dim=1)
        cells = torch.zeros(batch, rows * cols, dtype=torch.bool)
        cells.scatter_(1, order[:, :count], True)
        grid = cells.view(batch, rows, cols).repeat_interleave(size, 1).repeat_interleave(size, 2)
        occluded = torch.zeros(batch, height, width, dtype=torch.bool)
        occluded[:, :rows * size, :cols * size] = grid
        return occluded

    def __repr__(self) -> str:
        return f"PatchOcclusion(ratio={self.ratio}, size={self.size or 'patch'})"


class BlockOcclusion:
    """One large block per image: ``side`` of the image's height by ``side`` of its width, at a
    uniformly random position inside the image."""

    def __init__(self, side: float = 0.5) -> None:
        if not 0.0 < side < 1.0:
            raise ValueError(f"block occlusion side must be in (0, 1) of the image, got {side!r}")
        self.side = float(side)

    def __call__(self, batch: int, height: int, width: int, patch: int, generator: torch.Generator) -> torch.Tensor:
        block_h, block_w = max(1, round(self.side * height)), max(1, round(self.side * width))
        tops = torch.randint(0, height - block_h + 1, (batch,), generator=generator)
        lefts = torch.randint(0, width - block_w + 1, (batch,), generator=generator)
        rows, cols = torch.arange(height)[None, :, None], torch.arange(width)[None, None, :]
        return ((rows >= tops[:, None, None]) & (rows < tops[:, None, None] + block_h)
                & (cols >= lefts[:, None, None]) & (cols < lefts[:, None, None] + block_w))

    def __repr__(self) -> str:
        return f"BlockOcclusion(side={self.side})"


def build_occlusion(spec: Mapping[str, Any] | None) -> PatchOcclusion | BlockOcclusion | None:
    """``{"type": "patch", "ratio": r[, "size": px]}``, ``{"type": "block", "side": s}`` or None (clean)."""
    if spec is None:
        return None
    options = dict(spec)
    kind = options.pop("type", None)
    try:
        if kind == "patch":
            return PatchOcclusion(**options)
        if kind == "block":
            return BlockOcclusion(**options)
    except TypeError as error:
        raise ValueError(f"occlusion {dict(spec)}: {error}") from None
    raise ValueError(f"occlusion type must be 'patch' (ratio, size) or 'block' (side), got {kind!r} in {dict(spec)}")


def occluded_tokens(occluded: torch.Tensor, patch_size: int | tuple[int, int], threshold: float = 0.5) -> torch.Tensor:
    """B×H×W occluded pixels → B×N bool, a patch occluded when more than ``threshold`` of its
    pixels are (tokens in MAE's row-major order)."""
    covered = patchify(occluded[:, None].float(), as_pair(patch_size, "patch_size")).mean(dim=-1)
    return covered > threshold


def visible_with_padding(tokens: Tokens, occluded: torch.Tensor, prefix: int = 1) -> tuple[Tokens, torch.Tensor]:
    """The tokens not occluded (B×N bool), each row's in token order, padded to the row with the
    most; and ``valid`` B×K (True = a real token). The tokens carry ``meta["attn_mask"]``
    (B×1×(P+K)×(P+K), True = may attend) so an encoder's blocks never attend to padding. Every row
    keeps at least one token (an image occluded all over keeps its first patch)."""
    occluded = occluded.clone()
    fully = occluded.all(dim=1)
    occluded[fully, 0] = False
    order = torch.argsort(occluded.to(torch.uint8), dim=1, stable=True)  # visible first, in token order
    counts = (~occluded).sum(dim=1)
    keep = int(counts.max())
    valid = torch.arange(keep, device=occluded.device)[None, :] < counts[:, None]
    visible = tokens.take(order[:, :keep])
    keys = torch.cat([torch.ones_like(valid[:, :prefix]), valid], dim=1)  # prefix tokens always seen
    attn_mask = keys[:, None, None, :].expand(-1, 1, keys.shape[1], -1)
    return replace(visible, meta={**visible.meta, "attn_mask": attn_mask}), valid


class AUCrop:
    """The AU protocol's view: in training a random ``size`` crop and a horizontal flip, in
    evaluation (``train=False``) the centre ``size`` crop; then normalisation (``mean``/``std``;
    None: the default statistics of the image's channels)."""

    def __init__(self, size: int = 224, train: bool = True, flip: bool = True, mean: Any = None, std: Any = None) -> None:
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            raise ValueError(f"face_au_crop: give mean and std together, one value per channel; got mean {mean!r}, "
                             f"std {std!r}")
        self.size, self.train, self.flip = int(size), bool(train), bool(flip)
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(v) for v in std]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from maekit.data.views import default_mean_std

        height, width = image.shape[-2:]
        if height < self.size or width < self.size:
            raise ValueError(f"au_crop: a {height}×{width} face is smaller than the crop size {self.size}")
        if self.train:
            top = int(torch.randint(0, height - self.size + 1, ()))
            left = int(torch.randint(0, width - self.size + 1, ()))
        else:
            top, left = (height - self.size) // 2, (width - self.size) // 2
        crop = image[..., top:top + self.size, left:left + self.size]
        if self.train and self.flip and bool(torch.rand(()) < 0.5):
            crop = crop.flip(-1)
        mean, std = (self.mean, self.std) if self.mean is not None else default_mean_std(image.shape[0])
        if len(mean) != image.shape[0]:
            raise ValueError(f"face_au_crop: mean/std have {len(mean)} values for an image of {image.shape[0]} channels")
        return (crop - torch.tensor(mean, dtype=crop.dtype).view(-1, 1, 1)) / torch.tensor(std, dtype=crop.dtype).view(-1, 1, 1)
