"""Image patchifier with the reference MAE's layout."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from maekit.nn.base import Patchifier
from maekit.structures import Tokens

__all__ = ["ImagePatchifier", "CubePatchifier", "patchify", "unpatchify", "cube_patchify", "cube_unpatchify", "as_pair",
           "as_triple"]


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


def as_triple(value: int | tuple[int, int, int] | list[int], what: str) -> tuple[int, int, int]:
    triple = (value, value, value) if isinstance(value, int) else tuple(value)
    if len(triple) != 3 or not all(isinstance(v, int) and v > 0 for v in triple):
        raise ValueError(f"{what} must be a positive int or three of them, got {value!r}")
    return triple


def cube_patchify(clips: torch.Tensor, cube_size: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) → (B, t·h·w, τ·p·q·C): cubes in time-major order (n = t·hw + row·w + col),
    inside a cube (τ, row, col, channel) with the channel fastest — VideoMAE's
    ``b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)``."""
    batch, channels, frames, height, width = clips.shape
    tau, p, q = cube_size
    x = clips.reshape(batch, channels, frames // tau, tau, height // p, p, width // q, q)
    x = torch.einsum("bctahpwq->bthwapqc", x)
    return x.reshape(batch, (frames // tau) * (height // p) * (width // q), tau * p * q * channels)


def cube_unpatchify(values: torch.Tensor, grid_size: tuple[int, int, int], cube_size: tuple[int, int, int]) -> torch.Tensor:
    """Exact inverse of :func:`cube_patchify`."""
    batch = values.shape[0]
    (t, h, w), (tau, p, q) = grid_size, cube_size
    channels = values.shape[-1] // (tau * p * q)
    x = values.reshape(batch, t, h, w, tau, p, q, channels)
    x = torch.einsum("bthwapqc->bctahpwq", x)
    return x.reshape(batch, channels, t * tau, h * p, w * q)


class CubePatchifier(Patchifier):
    """Cuts clips (B, C, T, H, W) into space-time cubes of ``tubelet_size`` frames × ``patch_size``
    pixels (VideoMAE: 2×16×16, 16×224² → 8×14×14 = 1568 tokens), layout of :func:`cube_patchify`.

    Also accepted: a batch mapping holding the clips under ``key``; several clips per sample
    (B, R, C, T, H, W) — repeated augmentation — flattened sample-major to B·R clips; and images
    (B, C, H, W), each repeated to ``tubelet_size`` frames (OmniMAE's image-as-video: one model for
    both, an image takes the first h·w rows of the video's position table). Coordinates are
    (time, row, column) grid positions; meta ``grid_size`` is (t, h, w).
    """

    def __init__(self, patch_size: int | tuple[int, int] = 16, tubelet_size: int = 2, in_chans: int = 3,
                 key: str = "inputs") -> None:
        super().__init__()
        self.patch_size = as_pair(patch_size, "patch_size")
        if not isinstance(tubelet_size, int) or tubelet_size < 1:
            raise ValueError(f"tubelet_size must be a positive int, got {tubelet_size!r}")
        if not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
        self.tubelet_size, self.in_chans, self.key = tubelet_size, in_chans, key

    @property
    def cube_size(self) -> tuple[int, int, int]:
        return (self.tubelet_size, *self.patch_size)

    def clips_of(self, batch: Any) -> torch.Tensor:
        clips = batch[self.key] if isinstance(batch, Mapping) else batch
        if not isinstance(clips, torch.Tensor) or clips.dim() not in (4, 5, 6):
            shape = tuple(clips.shape) if isinstance(clips, torch.Tensor) else type(clips).__name__
            raise ValueError(f"expected clips as a (B, C, T, H, W) tensor (or (B, views, C, T, H, W), or images "
                             f"(B, C, H, W)), got {shape}")
        if clips.dim() == 4:  # images as videos of one tubelet
            clips = clips.unsqueeze(2).expand(-1, -1, self.tubelet_size, -1, -1)
        elif clips.dim() == 6:
            clips = clips.flatten(0, 1)
        channels, frames, height, width = clips.shape[1:]
        if channels != self.in_chans:
            raise ValueError(f"expected clips with {self.in_chans} channels (in_chans), got {channels} in a batch of "
                             f"shape {tuple(clips.shape)} (clips are (B, C, T, H, W))")
        (tau, p, q) = self.cube_size
        if frames % tau or height % p or width % q:
            raise ValueError(f"clip size {frames}×{height}×{width} (frames×height×width) is not divisible by the cube "
                             f"size {tau}×{p}×{q}; sample a multiple of {tau} frames and resize or crop to a multiple "
                             f"of {p}×{q}")
        return clips

    def forward(self, batch: Any) -> Tokens:
        clips = self.clips_of(batch)
        batch_size, _, frames, height, width = clips.shape
        tau, p, q = self.cube_size
        grid = (frames // tau, height // p, width // q)
        axes = [torch.arange(n, device=clips.device) for n in grid]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(1, -1, 3).float()
        meta = {"grid_size": grid, "patch_size": self.patch_size, "tubelet_size": tau, "in_chans": self.in_chans,
                "clip_size": (frames, height, width)}
        return Tokens(values=cube_patchify(clips, self.cube_size), coords=coords.expand(batch_size, -1, -1), meta=meta)

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return cube_unpatchify(values, meta["grid_size"], (meta["tubelet_size"], *meta["patch_size"]))
