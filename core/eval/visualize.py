"""Reconstruction grids: input | masked | reconstruction | reconstruction with visible patches."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from maekit.structures import ForwardPass

__all__ = ["reconstruction_panels", "uint8_panels", "denormalised_panels", "patch_map_panels", "save_grid"]


def uint8_panels(pixels: torch.Tensor) -> list[np.ndarray]:
    """B×C×H×W pixels in [0, 1] (clamped) → B panels of H×W×C uint8."""
    return [(p.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for p in pixels.float().clamp(0, 1)]


def denormalised_panels(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                        grey: torch.Tensor | None = None) -> list[np.ndarray]:
    """Normalised images B×C×H×W → B panels of H×W×C uint8 (x·std + mean, clamped to [0, 1]);
    pixels where ``grey`` (broadcast to the images) is true are shown mid-grey (removed patches)."""
    mean_t, std_t = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    x = (images.float().cpu() * std_t + mean_t).clamp(0, 1)
    if grey is not None:
        x = torch.where(grey.bool().cpu(), torch.full_like(x, 0.5), x)
    return uint8_panels(x)


def patch_map_panels(values: torch.Tensor, grid: Sequence[int], size: Sequence[int]) -> list[np.ndarray]:
    """One number per patch (B×N, N = h·w of ``grid``: an attention or importance map) → B grey
    H×W×3 uint8 panels of ``size``, each map scaled to [0, 1] on its own, patches shown as blocks."""
    maps = values.float().reshape(-1, 1, *grid)
    low, high = maps.amin((2, 3), keepdim=True), maps.amax((2, 3), keepdim=True)
    maps = torch.nn.functional.interpolate((maps - low) / (high - low + 1e-12), size=tuple(size), mode="nearest")
    return uint8_panels(maps.expand(-1, 3, -1, -1))


@torch.no_grad()
def reconstruction_panels(model: Any, out: ForwardPass, mean: Sequence[float],
                          std: Sequence[float]) -> list[list[np.ndarray]]:
    """Four H×W×C uint8 panels per image of one pass (``model.run_steps``): input | masked |
    reconstruction | reconstruction with the visible patches pasted back. The prediction is turned
    back into token values by the target (``to_values``: norm-pix predictions get each patch's own
    mean and variance back, as the reference visualisation does). A method that predicts no pixels
    (a teacher's features, SdAE) gets input | masked only."""
    tokens, mask = out.tokens, out.mask
    try:
        pred = model.target.to_values(out.pred, tokens)
    except NotImplementedError:
        pred = None
    removed = mask.masked.unsqueeze(-1).to(tokens.values.dtype)
    unpatchify = model.patchifier.unpatchify
    images = unpatchify(tokens.values, tokens.meta)
    masked_input = unpatchify(tokens.values * (1 - removed), tokens.meta)
    removed_pixels = unpatchify(removed.expand_as(tokens.values), tokens.meta)  # removed patches shown grey
    columns = [denormalised_panels(images, mean, std), denormalised_panels(masked_input, mean, std, removed_pixels)]
    if pred is not None:
        pasted = tokens.values * (1 - removed) + pred * removed
        columns += [denormalised_panels(unpatchify(x, tokens.meta), mean, std) for x in (pred, pasted)]
    return [list(row) for row in zip(*columns)]


def save_grid(rows: list[list[np.ndarray]], path: str | Path, scale: int = 1, gap: int = 2) -> Path:
    """Write rows of equally sized panels as one PNG (grayscale panels are shown as RGB)."""
    from PIL import Image

    panels = [[np.repeat(p, 3, axis=-1) if p.shape[-1] == 1 else p for p in row] for row in rows]
    height, width = panels[0][0].shape[:2]
    columns = len(panels[0])
    canvas = np.full(((height + gap) * len(panels) + gap, (width + gap) * columns + gap, 3), 255, np.uint8)
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            top, left = gap + r * (height + gap), gap + c * (width + gap)
            canvas[top:top + height, left:left + width] = panel
    image = Image.fromarray(canvas)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
