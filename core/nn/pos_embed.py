"""Position embeddings: the reference MAE's fixed 2-D sin-cos table, a sin-cos embedding of
continuous coordinates, and resampling of a grid table to another grid size."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["sincos_1d", "sincos_2d_table", "sinusoid_table", "mocov3_sincos_2d_table", "sincos_embed", "resample_grid_table"]


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[sin(pos·ω), cos(pos·ω)] with ω_i = 1/10000^(i/(dim/2)), in float64 as the reference."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}")
    omega = np.arange(dim // 2, dtype=np.float64)
    omega /= dim / 2.0
    omega = 1.0 / 10000**omega
    angles = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d_table(grid_size: tuple[int, int], dim: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """The reference MAE table (1, P + h·w, dim): first half encodes the column, second the row.

    Rows for prefix tokens (cls) are zeros. Identical, bit for bit, to
    ``get_2d_sincos_pos_embed`` of the reference for square grids; generalised to h≠w.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding width must be divisible by 4, got {dim}")
    grid_h, grid_w = grid_size
    cols, rows = np.meshgrid(np.arange(grid_w, dtype=np.float32), np.arange(grid_h, dtype=np.float32))
    table = np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1)
    table = np.concatenate([np.zeros([num_prefix_tokens, dim]), table], axis=0)
    return torch.from_numpy(table).float().unsqueeze(0)


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The 1-D table (1, n, dim) of VideoMAE, OmniMAE and transformers' VideoMAE over the flat token
    index n (t·h·w order for video): channel j is sin (j even) or cos (j odd) of n / 10000^(2⌊j/2⌋/dim),
    interleaved (the MAE table puts all sines first). float64 as ``get_sinusoid_encoding_table``,
    then float32: official checkpoints do not store it, so it must be bit-exact."""
    if dim % 2:
        raise ValueError(f"sinusoid table width must be even, got {dim}")
    exponent = 2 * (np.arange(dim) // 2) / dim
    angles = np.arange(num_positions, dtype=np.float64)[:, None] / np.power(10000, exponent)[None, :]
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return torch.FloatTensor(angles).unsqueeze(0)


def mocov3_sincos_2d_table(grid_size: tuple[int, int], dim: int, num_prefix_tokens: int = 1,
                           temperature: float = 10000.0) -> torch.Tensor:
    """MoCo v3's ``build_2d_sincos_position_embedding`` (BootMAE uses it): [sin(r·ω), cos(r·ω),
    sin(c·ω), cos(c·ω)] for the token at row r, column c, with ω_i = 1/10000^(i/(dim/4)), computed in
    float32 as there — rows first, where the MAE table puts columns first. Prefix rows are zeros."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding width must be divisible by 4, got {dim}")
    grid_h, grid_w = grid_size
    # the reference's meshgrid(grid_w, grid_h) ('ij'), flattened: its first axis walks the rows of
    # the token order (row-major), so the angles named "w" there are row angles here
    rows, cols = torch.meshgrid(torch.arange(grid_h, dtype=torch.float32), torch.arange(grid_w, dtype=torch.float32),
                                indexing="ij")
    omega = 1.0 / (temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    out_r, out_c = torch.einsum("m,d->md", rows.flatten(), omega), torch.einsum("m,d->md", cols.flatten(), omega)
    table = torch.cat([out_r.sin(), out_r.cos(), out_c.sin(), out_c.cos()], dim=1)
    return torch.cat([torch.zeros(num_prefix_tokens, dim), table], dim=0).unsqueeze(0)


def sincos_embed(coords: torch.Tensor, dim: int) -> torch.Tensor:
    """Sin-cos embedding of continuous coordinates (…×k) into …×dim, dim/k channels per axis.

    Each axis gets the 1-D embedding of :func:`sincos_1d` in axis order, so for image coords given
    as (column, row) this reproduces :func:`sincos_2d_table`.
    """
    axes = coords.shape[-1]
    if dim % (2 * axes):
        raise ValueError(f"embedding width {dim} must be divisible by 2×{axes} (two per coordinate axis)")
    per_axis = dim // axes
    exponent = torch.arange(per_axis // 2, device=coords.device, dtype=torch.float64) / (per_axis / 2.0)
    omega = (1.0 / 10000**exponent).to(torch.float32)
    angles = coords.float().unsqueeze(-1) * omega  # …×k×(per_axis/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def resample_grid_table(
    table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int], num_prefix_tokens: int = 1,
    scale_offset: float = 0.0,
) -> torch.Tensor:
    """Bicubic resampling of a (1, P + h·w, D) table to another grid, prefix rows unchanged.

    The same operation as the reference ``interpolate_pos_embed`` and transformers'
    ``interpolate_pos_encoding`` (align_corners False). ``scale_offset`` > 0 resamples by scale
    factors (new + offset) / old instead of to a size, as DINO's ``interpolate_pos_encoding`` (0.1,
    "to avoid floating point error"), which CropMAE's and SiamMAE-style propagation evaluations
    copy: the output grid is the same, the sampled places shift by a fraction of a cell.
    """
    if tuple(old_grid) == tuple(new_grid):
        return table
    prefix, grid = table[:, :num_prefix_tokens], table[:, num_prefix_tokens:]
    if grid.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"table has {grid.shape[1]} grid rows, expected {old_grid[0]}×{old_grid[1]}")
    dim = table.shape[-1]
    grid = grid.reshape(1, *old_grid, dim).permute(0, 3, 1, 2)
    if scale_offset:
        scale = tuple((new + scale_offset) / old for new, old in zip(new_grid, old_grid))
        grid = F.interpolate(grid.float(), scale_factor=scale, mode="bicubic", align_corners=False).to(table.dtype)
        if tuple(grid.shape[-2:]) != tuple(new_grid):
            raise ValueError(f"scale_offset {scale_offset} resamples {old_grid} to {tuple(grid.shape[-2:])}, not "
                             f"{tuple(new_grid)} (an offset in [0, 1) keeps the grid)")
    else:
        grid = F.interpolate(grid.float(), size=new_grid, mode="bicubic", align_corners=False).to(table.dtype)
    return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)
