"""Image patchifier with the reference MAE's layout."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from maekit.nn.base import Patchifier
from maekit.structures import Tokens

__all__ = ["ImagePatchifier", "patchify", "unpatchify", "as_pair"]


def as_pair(value: int | tuple[int, int] | list[int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{what} must be a positive int or a pair of them, got {value!r}")
    return pair


def patchify(images: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) → (B, h·w, p·q·C): row-major patches, channel fastest inside a patch."""
    batch, channels, height, width = images.shape
    p, q = patch_size
    h, w = height // p, width // q
    x = images.reshape(batch, channels, h, p, w, q)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(batch, h * w, p * q * channels)


def unpatchify(values: torch.Tensor, grid_size: tuple[int, int], patch_size: tuple[int, int]) -> torch.Tensor:
    """Exact inverse of :func:`patchify`."""
    batch = values.shape[0]
    (h, w), (p, q) = grid_size, patch_size
    channels = values.shape[-1] // (p * q)
    x = values.reshape(batch, h, w, p, q, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(batch, channels, h * p, w * q)


class ImagePatchifier(Patchifier):
    """Cuts images into non-overlapping patches, layout of the reference MAE ("nchpwq->nhwpqc").

    Accepts a (B, C, H, W) tensor or a batch mapping holding one under ``key`` ("inputs", as
    maekit's datasets and mmengine name it). Any channel count and
    non-square sizes; H and W must be multiples of the patch size. Coordinates are (row, column)
    grid positions.
    """

    def __init__(self, patch_size: int | tuple[int, int] = 16, in_chans: int = 3, key: str = "inputs") -> None:
        super().__init__()
        self.patch_size = as_pair(patch_size, "patch_size")
        if not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
        self.in_chans = in_chans
        self.key = key

    def images_of(self, batch: Any) -> torch.Tensor:
        images = batch[self.key] if isinstance(batch, Mapping) else batch
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"expected images as a (B, C, H, W) tensor, got {shape}")
        channels, height, width = images.shape[1:]
        if channels != self.in_chans:
            raise ValueError(f"expected images with {self.in_chans} channels (in_chans), got {channels} "
                             f"in a batch of shape {tuple(images.shape)}")
        p, q = self.patch_size
        if height % p or width % q:
            raise ValueError(f"image size {height}×{width} is not divisible by the patch size {p}×{q}; "
                             f"resize or crop to a multiple of it")
        return images

    def forward(self, batch: Any) -> Tokens:
        images = self.images_of(batch)
        batch_size, _, height, width = images.shape
        grid = (height // self.patch_size[0], width // self.patch_size[1])
        rows, cols = torch.meshgrid(torch.arange(grid[0], device=images.device),
                                    torch.arange(grid[1], device=images.device), indexing="ij")
        coords = torch.stack([rows, cols], dim=-1).reshape(1, -1, 2).float().expand(batch_size, -1, -1)
        meta = {"grid_size": grid, "patch_size": self.patch_size, "in_chans": self.in_chans,
                "image_size": (height, width)}
        return Tokens(values=patchify(images, self.patch_size), coords=coords, meta=meta)

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return unpatchify(values, meta["grid_size"], meta["patch_size"])
