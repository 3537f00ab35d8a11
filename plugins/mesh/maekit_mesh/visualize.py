"""Meshes rendered with PIL: an oblique orthographic view, faces painted back to front and shaded
by their normal; patches coloured, removed patches grey, predicted vertices as red dots."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from maekit_mesh.features import CORNERS, VALID

__all__ = ["render_faces", "mesh_panels", "patch_colours"]

_A, _B = np.radians(35.0), np.radians(30.0)
VIEW = (np.array([[1, 0, 0], [0, np.cos(_B), -np.sin(_B)], [0, np.sin(_B), np.cos(_B)]])
        @ np.array([[np.cos(_A), 0, np.sin(_A)], [0, 1, 0], [-np.sin(_A), 0, np.cos(_A)]]))
GREY, RED = np.array([200.0, 200, 200]), (215, 40, 40)


def patch_colours(count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct, mid-bright RGB colours (count×3)."""
    rng = np.random.default_rng(seed)
    return 70 + rng.uniform(0, 160, size=(count, 3))


def render_faces(corners: np.ndarray, colours: np.ndarray, size: int = 128, radius: float = 1.1,
                 dots: np.ndarray | None = None) -> np.ndarray:
    """Triangles ``corners`` (F×3×3) in ``colours`` (F×3), lit by the view direction, far faces
    first; optional ``dots`` (K×3) drawn on top in red. Returns size×size×3 uint8."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    view = corners.reshape(-1, 3) @ VIEW.T
    view = view.reshape(-1, 3, 3)
    half, scale = size / 2, (size / 2 - 2) / radius
    normals = np.cross(view[:, 1] - view[:, 0], view[:, 2] - view[:, 0])
    light = np.abs(normals[:, 2]) / np.maximum(np.linalg.norm(normals, axis=1), 1e-12)
    for f in np.argsort(view[:, :, 2].mean(1)):  # far first
        shade = tuple(int(c) for c in np.clip(colours[f] * (0.45 + 0.55 * light[f]), 0, 255))
        draw.polygon([(half + x * scale, half - y * scale) for x, y, _ in view[f]], fill=shade)
    if dots is not None:
        for x, y, _ in dots @ VIEW.T:
            px, py = half + x * scale, half - y * scale
            draw.ellipse([px - 1, py - 1, px + 1, py + 1], fill=RED)
    return np.asarray(image)


@torch.no_grad()
def mesh_panels(model: Any, meshes: torch.Tensor, seed: int = 0, size: int = 128) -> list[list[np.ndarray]]:
    """Per mesh: faces coloured by patch | removed patches grey | the kept patches with the
    predicted vertices of the removed ones (red dots)."""
    model.eval()
    tokens = model.tokenize({"inputs": meshes})
    noise = torch.rand(tokens.batch_size, tokens.num_tokens, generator=torch.Generator().manual_seed(seed))
    pred, mask, _ = model.reconstruct({"inputs": meshes}, noise=noise)
    rows = []
    for n, mesh in enumerate(meshes):
        real = mesh[:, 0, VALID] > 0.5
        corners = mesh[real][..., CORNERS].reshape(-1, 64, 3, 3).numpy()
        colours = np.repeat(patch_colours(len(corners)), 64, axis=0)
        removed = mask.masked[n][real].bool().numpy()
        hidden = colours.copy()
        hidden[np.repeat(removed, 64)] = GREY
        kept = corners[~removed].reshape(-1, 3, 3)
        predicted = pred["vertices"][n][mask.masked[n].bool()].reshape(-1, 3).numpy()
        rows.append([render_faces(corners.reshape(-1, 3, 3), colours, size),
                     render_faces(corners.reshape(-1, 3, 3), hidden, size),
                     render_faces(kept, np.repeat(patch_colours(len(corners))[~removed], 64, axis=0), size,
                                  dots=predicted)])
    return rows
