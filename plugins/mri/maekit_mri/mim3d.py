"""The 3-D masked image modelling seed (masked autoencoding of whole MR volumes): 3-D patches
(small, e.g. 8³ or 16³), a high mask ratio, the raw voxels as the target, a light decoder. Built
from core's coordinate encoder/decoder; only the patchifier and the volume dataset are new."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from maekit.model import MaskedAutoencoder
from maekit.nn.base import Patchifier
from maekit.structures import Tokens

__all__ = ["VolumePatchifier", "patchify_volume", "unpatchify_volume", "MRIVolumes", "mim3d"]


def _triple(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    triple = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(triple) != 3 or min(triple) < 1:
        raise ValueError(f"{what} must be a positive int or three of them, got {value!r}")
    return triple


def patchify_volume(volumes: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """B×C×D×H×W → B×(d·h·w)×(p·q·r·C): patches in (depth, row, column) order, each patch's voxels
    in (p, q, r, c) order — the 3-D analogue of MAE's "nchpwq->nhwpqc"."""
    b, c, depth, height, width = volumes.shape
    (p, q, r) = patch
    x = volumes.reshape(b, c, depth // p, p, height // q, q, width // r, r)
    x = torch.einsum("ncdphqwr->ndhwpqrc", x)
    return x.reshape(b, (depth // p) * (height // q) * (width // r), p * q * r * c)


def unpatchify_volume(values: torch.Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]) -> torch.Tensor:
    """The inverse of :func:`patchify_volume`."""
    b = values.shape[0]
    (d, h, w), (p, q, r) = grid, patch
    c = values.shape[-1] // (p * q * r)
    x = values.reshape(b, d, h, w, p, q, r, c)
    return torch.einsum("ndhwpqrc->ncdphqwr", x).reshape(b, c, d * p, h * q, w * r)


class VolumePatchifier(Patchifier):
    """Non-overlapping 3-D patches of B×C×D×H×W volumes; coords are (depth, row, column) grid
    positions, which core's coordinate encoder embeds with 3-D sin-cos."""

    def __init__(self, patch_size: int | Sequence[int] = 16, in_chans: int = 1, key: str = "inputs") -> None:
        super().__init__()
        self.patch_size, self.in_chans, self.key = _triple(patch_size, "patch_size"), in_chans, key

    def forward(self, batch: Any) -> Tokens:
        volumes = batch[self.key] if isinstance(batch, dict) else batch
        if volumes.dim() != 5 or volumes.shape[1] != self.in_chans:
            raise ValueError(f"expected volumes B×{self.in_chans}×D×H×W, got shape {tuple(volumes.shape)}")
        if any(size % p for size, p in zip(volumes.shape[2:], self.patch_size)):
            raise ValueError(f"volume size {tuple(volumes.shape[2:])} is not divisible by the patch {self.patch_size}")
        grid = tuple(size // p for size, p in zip(volumes.shape[2:], self.patch_size))
        axes = torch.meshgrid(*(torch.arange(n, device=volumes.device) for n in grid), indexing="ij")
        coords = torch.stack(axes, dim=-1).reshape(1, -1, 3).float().expand(volumes.shape[0], -1, -1)
        return Tokens(values=patchify_volume(volumes, self.patch_size), coords=coords,
                      meta={"grid_size": grid, "patch_size": self.patch_size})

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return unpatchify_volume(values, meta["grid_size"], meta["patch_size"])


class MRIVolumes(Dataset):
    """Whole normalised volumes (1×S×S×S in [0, 1], trilinear resize to ``size``) of one contrast:
    every ``.nii``/``.nii.gz`` under ``root`` (or the given ``files``; nibabel's bundled T1 with
    ``files=["nibabel:anatomical.nii"]``)."""

    modality = "volume"

    def __init__(self, root: str | Path | None = None, files: Sequence[str] | None = None, size: int = 96) -> None:
        from maekit_mri.nifti import load_volume, normalise_volume

        paths = [self._resolve(f) for f in files] if files else sorted(
            p for p in Path(root).rglob("*") if p.name.endswith((".nii", ".nii.gz"))) if root else []
        if not paths:
            raise ValueError(f"no NIfTI volumes found (root={root!r}, files={files!r})")
        volumes = []
        for path in paths:
            volume = torch.from_numpy(normalise_volume(load_volume(path)[0], name=str(path)))[None, None]
            volumes.append(F.interpolate(volume, size=(size,) * 3, mode="trilinear", align_corners=False)[0])
        self.volumes = torch.stack(volumes).clamp(0, 1)

    @staticmethod
    def _resolve(name: str) -> Path:
        if name.startswith("nibabel:"):
            from nibabel.testing import data_path

            return Path(data_path) / name.removeprefix("nibabel:")
        return Path(name)

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": self.volumes[index], "label": -1}


def mim3d(img_size: int = 96, patch_size: int = 16, mask_ratio: float = 0.75, embed_dim: int = 384, depth: int = 12,
          num_heads: int = 6, decoder_embed_dim: int = 192, decoder_depth: int = 2, decoder_num_heads: int = 6) -> MaskedAutoencoder:
    """3-D MIM: :class:`VolumePatchifier`, random masking at a high ratio, core's coordinate
    encoder (3-D sin-cos positions, cls token) and a light coordinate decoder, raw-voxel target,
    MSE on removed patches. Widths must be divisible by 6 (two sin-cos channels per axis)."""
    patch = _triple(patch_size, "patch_size")
    if img_size % patch[0] or img_size % patch[1] or img_size % patch[2]:
        raise ValueError(f"img_size {img_size} is not divisible by the patch {patch}")
    voxels = int(np.prod(patch))
    return MaskedAutoencoder(
        patchifier=VolumePatchifier(patch, in_chans=1),
        masker=dict(type="random_mask", mask_ratio=mask_ratio),
        encoder=dict(type="transformer_encoder", in_dim=voxels, embed_dim=embed_dim, depth=depth,
                     num_heads=num_heads, coord_dim=3),
        decoder=dict(type="transformer_decoder", encoder_dim=embed_dim, out_dim=voxels, embed_dim=decoder_embed_dim,
                     depth=decoder_depth, num_heads=decoder_num_heads),
        target=dict(type="pixels"),
        loss=dict(type="masked_mse"),
    )
