"""Stick figures: body 1 of a sequence over a few frames, seen from the camera (x right, y up)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from maekit_skeleton.model import token_frames
from maekit_skeleton.ntu import BONES

__all__ = ["draw_frames", "skeleton_panels"]

BLACK, GREY, RED = (20, 20, 20), (200, 200, 200), (220, 40, 40)


def draw_frames(frames: np.ndarray, shown: np.ndarray, colours: np.ndarray, bounds: tuple[float, float, float, float],
                cell: int = 48) -> np.ndarray:
    """A strip of stick figures, one cell per frame: ``frames`` (F, V, 3) coordinates, ``shown``
    (F, V) which joints to draw, ``colours`` (F, V, 3) their colours; a bone is drawn when both its
    joints are shown, in its first joint's colour. ``bounds`` = (x0, x1, y0, y1) shared by panels."""
    from PIL import Image, ImageDraw

    x0, x1, y0, y1 = bounds
    scale = (cell - 6) / max(x1 - x0, y1 - y0, 1e-6)
    image = Image.new("RGB", (cell * len(frames), cell), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for f, joints in enumerate(frames):
        px = 3 + f * cell + (joints[:, 0] - x0) * scale
        py = cell - 3 - (joints[:, 1] - y0) * scale
        for a, b in BONES:
            if shown[f, a] and shown[f, b]:
                draw.line([(px[a], py[a]), (px[b], py[b])], fill=tuple(int(c) for c in colours[f, a]), width=1)
        for v in np.flatnonzero(shown[f]):
            draw.point((float(px[v]), float(py[v])), fill=tuple(int(c) for c in colours[f, v]))
        if f:
            draw.line([(f * cell, 0), (f * cell, cell)], fill=GREY)
    return np.asarray(image)


@torch.no_grad()
def skeleton_panels(model: Any, sequences: torch.Tensor, seed: int = 0, num_shown: int = 4,
                    cell: int = 48) -> list[list[np.ndarray]]:
    """Per sample: input | masked input (removed joints greyed) | reconstruction (removed joints
    predicted, in red). A coordinate target is drawn as predicted (de-normalised with the true
    token's statistics when the target is per-token normalised, as MAE's pictures do); a motion
    target as one-step predictions x[f] + predicted motion."""
    from maekit.model import seeded_noise
    from maekit.ops import denorm_pix
    from maekit_skeleton.model import MotionTarget

    model.eval()
    out = model.run_steps({"inputs": sequences}, noise=seeded_noise(seed))
    tokens, pred, mask = out.tokens, out.pred, out.mask
    segment, grid, bodies = tokens.meta["segment"], tokens.meta["grid_size"], tokens.meta["bodies"]
    values = tokens.values.float()
    if isinstance(model.target, MotionTarget):
        truth = token_frames(values, grid, segment)
        if model.target.norm:  # back to motion with the true motion's per-token statistics
            raw = MotionTarget(model.target.stride)(tokens)
            pred = denorm_pix(pred, raw, model.target.eps)
        motion = token_frames(pred.float(), grid, segment)
        predicted = truth.clone()
        predicted[:, 1:] = truth[:, :-1] + motion[:, :-1]
    else:
        pred = model.target.to_values(pred, tokens)
        truth, predicted = token_frames(values, grid, segment), token_frames(pred.float(), grid, segment)
    removed = token_frames(mask.masked[..., None].expand(-1, -1, segment), grid, segment)[..., 0] > 0  # S×T×V
    rows = []
    for n in range(len(sequences)):
        body = n * bodies  # body 1 of sample n
        real = truth[body].abs().sum(-1) > 0  # joints present
        chosen = np.linspace(0, truth.shape[1] - 1, num_shown).round().astype(int)
        frames, hidden = truth[body, chosen].numpy(), removed[body, chosen].numpy()
        present = real[chosen].numpy()
        guess = np.where(hidden[..., None], predicted[body, chosen].numpy(), frames)
        points = frames[present] if present.any() else np.zeros((1, 3))
        bounds = (points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max())
        black = np.broadcast_to(np.array(BLACK), frames.shape).copy()
        masked_colours = np.where(hidden[..., None], np.array(GREY), black)
        recon_colours = np.where(hidden[..., None], np.array(RED), black)
        rows.append([draw_frames(frames, present, black, bounds, cell),
                     draw_frames(frames, present, masked_colours, bounds, cell),
                     draw_frames(guess, present, recon_colours, bounds, cell)])
    return rows
