"""Point clouds rendered to pictures with PIL: an oblique orthographic view, points drawn back to
front and shaded by depth; no display, no OpenGL."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["render_cloud", "point_cloud_panels", "VIEW"]

# a fixed oblique view: 30° about x after 35° about the vertical axis
_A, _B = np.radians(35.0), np.radians(30.0)
VIEW = (np.array([[1, 0, 0], [0, np.cos(_B), -np.sin(_B)], [0, np.sin(_B), np.cos(_B)]])
        @ np.array([[np.cos(_A), 0, np.sin(_A)], [0, 1, 0], [-np.sin(_A), 0, np.cos(_A)]]))
BLACK, GREY, RED, BLUE = (30, 30, 30), (200, 200, 200), (215, 40, 40), (40, 90, 200)


def render_cloud(points: np.ndarray, colours: np.ndarray | tuple[int, int, int] = BLACK, size: int = 128,
                 radius: float = 1.1, dot: int = 1) -> np.ndarray:
    """``points`` (P×3, within ``radius`` of the origin) as a size×size×3 uint8 image; nearer points
    are drawn later and darker. ``colours`` is one RGB or one per point."""
    from PIL import Image, ImageDraw

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3) @ VIEW.T
    colours = np.broadcast_to(np.asarray(colours, dtype=np.float64), (len(points), 3))
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    half = size / 2
    scale = (half - 2) / radius
    depth = (points[:, 2] + radius) / (2 * radius)  # 0 far … 1 near
    strength = 0.55 + 0.45 * np.clip(depth, 0, 1)  # far points fade towards white
    for i in np.argsort(points[:, 2]):  # far first
        colour = tuple(int(c) for c in 255 - (255 - colours[i]) * strength[i])
        x, y = half + points[i, 0] * scale, half - points[i, 1] * scale
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=colour)
    return np.asarray(image)


@torch.no_grad()
def point_cloud_panels(model: Any, clouds: torch.Tensor, seed: int = 0, size: int = 128) -> list[list[np.ndarray]]:
    """Per cloud: input | visible patches (masked ones in grey) | reconstruction. A Point-MAE model
    draws the visible groups in black and its predicted masked groups (around their true centres)
    in red; MAE3D draws its completed cloud in red with the visible points in black."""
    from maekit.model import seeded_noise

    model.eval()
    out = model.run_steps({"inputs": clouds}, noise=seeded_noise(seed))  # one tokenization (FPS) per picture
    tokens, mask, pred = out.tokens, out.mask, out.pred
    size_k = tokens.meta["group_size"]
    groups = tokens.values.reshape(tokens.batch_size, tokens.num_tokens, size_k, 3)
    if tokens.meta.get("recentred", False):
        groups = groups + tokens.coords.unsqueeze(2)
    rows = []
    for n in range(len(clouds)):
        removed = mask.masked[n].bool()
        visible, hidden = groups[n][~removed].reshape(-1, 3).numpy(), groups[n][removed].reshape(-1, 3).numpy()
        seen = np.concatenate([hidden, visible])
        seen_colours = np.concatenate([np.tile(GREY, (len(hidden), 1)), np.tile(BLACK, (len(visible), 1))])
        if isinstance(pred, dict):  # MAE3D: the completed cloud
            guessed = pred["cloud"][n].float().numpy()
        else:  # Point-MAE: each masked group's predicted points around its centre
            offsets = pred[n].float().reshape(tokens.num_tokens, -1, 3)[removed]
            guessed = (offsets + tokens.coords[n][removed].unsqueeze(1)).reshape(-1, 3).numpy()
        recon = np.concatenate([visible, guessed])
        recon_colours = np.concatenate([np.tile(BLACK, (len(visible), 1)), np.tile(RED, (len(guessed), 1))])
        rows.append([render_cloud(clouds[n].numpy(), BLUE, size), render_cloud(seen, seen_colours, size),
                     render_cloud(recon, recon_colours, size)])
    return rows
