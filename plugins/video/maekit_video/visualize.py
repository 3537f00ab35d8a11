"""Pictures of a video pass: per clip a strip of frames for the input, the masked input (removed
cubes grey) and the reconstruction with the visible cubes pasted back (each strip a row, labelled
on the left); and the same as an animated GIF (one GIF frame per video frame, labelled columns)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from maekit.eval.visualize import PanelTitles, has_pixel_inverse, uint8_panels
from maekit.structures import ForwardPass

__all__ = ["CLIP_TITLES", "clip_column_titles", "clip_columns", "clip_panels", "clip_titles", "save_gif"]

# what clip_columns draws: the last only where the target turns back into pixels
CLIP_TITLES = ("input", "masked", "reconstruction + visible")


def clip_column_titles(model: Any) -> tuple[str, ...]:
    """The names of :func:`clip_columns`' clips: input | masked | reconstruction + visible (the
    last where the target turns back into pixels)."""
    return CLIP_TITLES if has_pixel_inverse(model.target) else CLIP_TITLES[:2]


def clip_titles(model: Any) -> PanelTitles:
    """The labels of :func:`clip_panels`: one row per column of :func:`clip_columns`, repeated per clip."""
    return PanelTitles(rows=clip_column_titles(model))


@torch.no_grad()
def clip_columns(model: Any, out: ForwardPass, mean: Sequence[float], std: Sequence[float]) -> list[torch.Tensor]:
    """Clips (B, C, T, H, W) in [0, 1]: input, masked input, and — where the target turns back into
    pixels — the reconstruction with the visible cubes pasted back."""
    tokens, mask = out.tokens, out.mask
    removed = mask.masked.unsqueeze(-1).to(tokens.values.dtype)
    mean_t, std_t = torch.tensor(mean).view(1, -1, 1, 1, 1), torch.tensor(std).view(1, -1, 1, 1, 1)

    def pixels(values: torch.Tensor) -> torch.Tensor:
        return (model.patchifier.unpatchify(values.float(), tokens.meta) * std_t + mean_t).clamp(0, 1)

    grey = model.patchifier.unpatchify(removed.expand_as(tokens.values), tokens.meta).bool()
    columns = [pixels(tokens.values), torch.where(grey, torch.full_like(grey, 0.5, dtype=torch.float),
                                                  pixels(tokens.values))]
    if not has_pixel_inverse(model.target):  # MaskFeat predicts HOG, MVD teachers' features: not pixels
        return columns
    pred = model.target.to_values(out.pred, tokens)
    return columns + [pixels(tokens.values * (1 - removed) + pred * removed)]


def clip_panels(model: Any, out: ForwardPass, mean: Sequence[float], std: Sequence[float]) -> list[list[np.ndarray]]:
    """Rows of H×W×C uint8 panels: for each clip, one row per column of :func:`clip_columns`,
    each row the clip's frames left to right."""
    rows = []
    columns = clip_columns(model, out, mean, std)
    for clip in range(columns[0].shape[0]):
        for column in columns:
            rows.append(uint8_panels(column[clip].transpose(0, 1)))  # T panels of (C, H, W)
    return rows


def save_gif(columns: list[torch.Tensor], path: str | Path, scale: int = 4, fps: float = 4.0,
             titles: Sequence[str] | None = None) -> Path:
    """An animated GIF: frame t shows every clip (rows) × column (input | masked | reconstruction)
    at time t, the columns titled by ``titles`` (default: those of :func:`clip_columns`)."""
    from PIL import Image

    from maekit.eval.visualize import save_grid

    path = Path(path)
    names = tuple(titles) if titles is not None else CLIP_TITLES[:len(columns)]
    frames = []
    for t in range(columns[0].shape[2]):
        rows = [[uint8_panels(column[clip:clip + 1, :, t])[0] for column in columns] for clip in range(columns[0].shape[0])]
        still = save_grid(rows, path.with_suffix(f".frame{t}.png"), scale=scale, titles=PanelTitles(columns=names))
        frames.append(Image.open(still).convert("P", palette=Image.ADAPTIVE))
        still.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
