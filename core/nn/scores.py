"""Per-token scores from attention, and how they follow an image through its crop and flip:
what attention-guided masking (AMT, AttMask, MRA) reads."""
from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from maekit.structures import Tokens

__all__ = ["cls_attention", "scale_heads", "scores_in_crop", "GEOMETRY_FIELDS"]

#: What a crop's geometry row holds (``maekit.data.views.PlacedImage``): the crop's top, left,
#: height and width as fractions of the source image, then 1.0 when the crop was flipped.
GEOMETRY_FIELDS = ("top", "left", "height", "width", "flipped")


def scale_heads(attention: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Each head's row (B×heads×N) min–max scaled to [0, 1] over the tokens (AMT); a constant row
    becomes zeros rather than NaN (the reference divides without an epsilon)."""
    low = attention.amin(dim=-1, keepdim=True)
    span = attention.amax(dim=-1, keepdim=True) - low
    return (attention - low) / span.clamp_min(eps)


@torch.no_grad()
def cls_attention(encoder: Any, tokens: Tokens, layer: int = -1, per_head_scaling: bool = True) -> torch.Tensor:
    """How much the class token attends to each token at block ``layer`` (B×N, float32): the
    softmax row of the cls query over the other tokens, each head min–max scaled to [0, 1] first
    (``per_head_scaling``: AMT, MRA) or not (AttMask), then the mean over heads. ``encoder`` is a
    :class:`~maekit.nn.encoder.TokenEncoder` with a class token first."""
    found = encoder.forward_intermediates(tokens, [layer], attention=True)
    weights = next(iter(found.attention.values()))  # B×heads×(P+N)×(P+N)
    rows = weights[:, :, 0, encoder.num_prefix_tokens:].float()
    return (scale_heads(rows) if per_head_scaling else rows).mean(dim=1)


def scores_in_crop(maps: torch.Tensor, geometry: torch.Tensor, grid_size: tuple[int, int],
                   samples_per_patch: int = 4) -> torch.Tensor:
    """Per-token scores (B×h·w, row-major) of a crop, from score maps of the whole image.

    ``maps`` (B×H0×W0) cover each whole source image (AMT's cached attention, computed on the
    image resized whole); ``geometry`` (B×5, :data:`GEOMETRY_FIELDS`) says where each training
    crop came from and whether it was flipped. Each of the crop's h×w patches gets the mean of the
    map (bilinear, as the reference resizes it) over ``samples_per_patch``² points spread evenly
    inside the patch's footprint in the source: the map follows the crop and the flip exactly
    (the reference's crop indexing always takes the map's top-left corner)."""
    if maps.dim() != 3 or geometry.shape != (maps.shape[0], 5):
        raise ValueError(f"scores_in_crop takes maps B×H×W and geometry B×5, got {tuple(maps.shape)} and "
                         f"{tuple(geometry.shape)}")
    height, width = grid_size
    batch, steps = maps.shape[0], samples_per_patch
    geometry = geometry.to(maps.device, torch.float32)
    # sample points in the crop, as fractions of it: patch i's row points at (i + (a + ½)/s)/h
    rows = (torch.arange(height * steps, device=maps.device, dtype=torch.float32) + 0.5) / (height * steps)
    cols = (torch.arange(width * steps, device=maps.device, dtype=torch.float32) + 0.5) / (width * steps)
    top, left, crop_h, crop_w, flipped = geometry.unbind(dim=1)
    cols = torch.where(flipped[:, None] > 0.5, 1 - cols[None], cols[None])  # B×(w·s): a flip mirrors columns
    y = top[:, None] + crop_h[:, None] * rows[None]  # B×(h·s), fractions of the source
    x = left[:, None] + crop_w[:, None] * cols
    grid = torch.stack([(2 * x - 1)[:, None, :].expand(-1, y.shape[1], -1),
                        (2 * y - 1)[:, :, None].expand(-1, -1, x.shape[1])], dim=-1)
    sampled = F.grid_sample(maps[:, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    per_patch = sampled.view(batch, height, steps, width, steps).mean(dim=(2, 4))
    return per_patch.reshape(batch, height * width)
