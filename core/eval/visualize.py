"""Reconstruction grids: input | masked | reconstruction | reconstruction with visible patches,
each column (or, for strips such as a clip's frames, each row) labelled."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from maekit.structures import ForwardPass

__all__ = ["reconstruction_panels", "uint8_panels", "denormalised_panels", "patch_map_panels", "save_grid", "save_panels",
           "PanelTitles", "RECONSTRUCTION_TITLES", "reconstruction_titles", "has_pixel_inverse"]

RECONSTRUCTION_TITLES = ("input", "masked", "reconstruction", "reconstruction + visible")


@dataclass(frozen=True)
class PanelTitles:
    """Labels of a picture grid: one per column, and/or row labels repeated down the grid (a method
    that draws one row per panel kind, e.g. a clip's frames left to right, labels its rows)."""

    columns: Sequence[str] = ()
    rows: Sequence[str] = ()


def has_pixel_inverse(target: Any) -> bool:
    """Whether ``target`` turns a prediction back into token values (``to_values``), so pictures
    show a reconstruction: not a feature or HOG target, nor named targets without a picture part."""
    from maekit.nn.base import Target
    from maekit.nn.targets import NamedTargets

    if isinstance(target, NamedTargets):
        return target.picture is not None and has_pixel_inverse(target.parts[target.picture])
    return type(target).to_values is not Target.to_values


def reconstruction_titles(target: Any) -> PanelTitles:
    """The columns :func:`reconstruction_panels` draws for a method with this target: all four, or
    input | masked when the target has no inverse to pixels (a teacher's features, HOG)."""
    return PanelTitles(columns=RECONSTRUCTION_TITLES if has_pixel_inverse(target) else RECONSTRUCTION_TITLES[:2])


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
    pred = model.target.to_values(out.pred, tokens) if has_pixel_inverse(model.target) else None
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


def save_grid(rows: list[list[np.ndarray]], path: str | Path, scale: int = 1, gap: int = 2,
              titles: PanelTitles | None = None) -> Path:
    """Write rows of equally sized panels as one PNG (grayscale panels are shown as RGB), with the
    column titles above and the row labels (repeated down the rows) on the left when given."""
    from PIL import Image

    panels = [[np.repeat(p, 3, axis=-1) if p.shape[-1] == 1 else p for p in row] for row in rows]
    height, width = panels[0][0].shape[:2]
    columns = len(panels[0])
    titles = titles or PanelTitles()
    if titles.columns and len(titles.columns) != columns:
        raise ValueError(f"{len(titles.columns)} column titles ({', '.join(titles.columns)}) for a grid of {columns} columns")
    if titles.rows and len(panels) % len(titles.rows):
        raise ValueError(f"{len(titles.rows)} row labels ({', '.join(titles.rows)}) do not repeat evenly over {len(panels)} rows")
    canvas = np.full(((height + gap) * len(panels) + gap, (width + gap) * columns + gap, 3), 255, np.uint8)
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            top, left = gap + r * (height + gap), gap + c * (width + gap)
            canvas[top:top + height, left:left + width] = panel
    image = Image.fromarray(canvas)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    if titles.columns or titles.rows:
        image = _label(image, titles, len(panels), columns, (height + gap) * scale, (width + gap) * scale, gap * scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _wrap(draw: Any, text: str, font: Any, width: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` (a single long word stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _label(image: Any, titles: PanelTitles, row_count: int, column_count: int, row_step: int, column_step: int,
           gap: int) -> Any:
    """The grid with a band of column titles on top and a band of row labels on the left."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    measure = ImageDraw.Draw(image)
    line = 15
    left = 0
    if titles.rows:
        left = int(max(measure.textlength(label, font=font) for label in titles.rows)) + 10
    wrapped = [_wrap(measure, title, font, column_step - gap - 4) for title in titles.columns]
    top = (max(len(lines) for lines in wrapped) * line + 6) if wrapped else 0
    canvas = Image.new("RGB", (image.width + left, image.height + top), "white")
    canvas.paste(image, (left, top))
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(wrapped):
        centre = left + gap + c * column_step + (column_step - gap) / 2
        for i, text in enumerate(lines):
            draw.text((centre, 3 + i * line), text, fill="black", font=font, anchor="ma")
    for r in range(row_count if titles.rows else 0):
        label = titles.rows[r % len(titles.rows)]
        draw.text((left - 5, top + gap + r * row_step + (row_step - gap) / 2), label, fill="black", font=font, anchor="rm")
    return canvas


def save_panels(model: Any, images: Any, mean: Sequence[float] | None, std: Sequence[float] | None, path: str | Path,
                seed: int = 0, scale: int | None = None) -> Path:
    """``model``'s picture of ``images`` (its ``panels``, labelled by its ``panel_titles``) as one
    PNG, upscaled by ``scale`` (default: the model's ``picture_scale``, else 4)."""
    rows = model.panels(images, mean, std, seed=seed)
    return save_grid(rows, path, scale=getattr(model, "picture_scale", 4) if scale is None else scale,
                     titles=model.panel_titles())
