"""Demo data, said plainly: procedural faces whose AU-like labels are exact (a pipeline check, not
AU science), and the real faces bundled with scikit-image (``lfw_subset``), unlabelled.

A procedural face is drawn at 4× its size and block-averaged down (anti-aliasing): a face ellipse
of the subject's skin tone on a background, eyes, brows, nose, mouth. A "subject" is an identity
seed (face size and place, skin, eye spacing, brow and mouth shape, background); each frame draws
its AUs and a small head shift. What each AU moves:

- AU1 inner brow raiser: the brows' inner ends up;  AU2 outer brow raiser: the outer ends up;
- AU4 brow lowerer: the brows down and drawn together;  AU6 cheek raiser: lower eyelids raised
  and a crease under each eye;  AU43 eyes closed: each eye a thin lid line;
- AU12 lip corner puller: mouth corners up;  AU15 lip corner depressor: corners down (never with
  AU12);  AU25 lips part: a dark opening between the lips.

Five channels for MCM's path: R, G, B, a depth map (an ellipsoid's height plus a nose bump; the
open mouth deeper) and a thermal map (smooth warm blobs at the eyes, the mouth — warmer when open —
and the forehead), each in [0, 1].
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit_face.aus import fold_subjects

__all__ = ["PROCEDURAL_AUS", "procedural_parts", "draw_face", "sample_identity", "sample_aus", "ProceduralFaces",
           "LFWFaces"]

PROCEDURAL_AUS: tuple[int, ...] = (1, 2, 4, 6, 12, 15, 25, 43)
SCALE = 4  # drawn at 4× and block-averaged


def procedural_parts(subjects: int) -> tuple[tuple[str, ...], ...]:
    """Subjects ``P01…`` dealt into three parts in turn (P01 → part 1, P02 → part 2, ...)."""
    if subjects < 3:
        raise ValueError(f"procedural faces need at least 3 subjects (one per fold part), got {subjects}")
    names = [f"P{k + 1:02d}" for k in range(subjects)]
    return tuple(tuple(names[part::3]) for part in range(3))


def sample_identity(rng: np.random.Generator) -> dict[str, Any]:
    """A subject's fixed look, in units of the image side."""
    skin = rng.uniform([0.55, 0.38, 0.28], [0.95, 0.78, 0.68])
    return dict(
        background=rng.uniform(0.05, 0.6, 3), skin=skin, hair=rng.uniform(0.0, 0.35, 3),
        centre=(0.5 + rng.uniform(-0.03, 0.03), 0.5 + rng.uniform(-0.03, 0.03)),
        radii=(rng.uniform(0.36, 0.44), rng.uniform(0.27, 0.34)), eye_gap=rng.uniform(0.13, 0.17),
        eye_size=rng.uniform(0.045, 0.06), brow_width=rng.uniform(0.025, 0.035), mouth_width=rng.uniform(0.1, 0.14),
        rates=rng.uniform(0.25, 0.5, len(PROCEDURAL_AUS)))


def sample_aus(rng: np.random.Generator, rates: np.ndarray) -> np.ndarray:
    """Each AU present with the subject's rate; AU12 and AU15 never together (one is dropped)."""
    present = (rng.random(len(PROCEDURAL_AUS)) < rates).astype(np.int64)
    up, down = PROCEDURAL_AUS.index(12), PROCEDURAL_AUS.index(15)
    if present[up] and present[down]:
        present[down if rng.random() < 0.5 else up] = 0
    return present


def _segments(ys: np.ndarray, xs: np.ndarray, points: list[tuple[float, float]], half_width: float) -> np.ndarray:
    """Pixels within ``half_width`` of the polyline through ``points`` ((y, x) pairs)."""
    inside = np.zeros(ys.shape, dtype=bool)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((ys - y0) * dy + (xs - x0) * dx) / max(dy * dy + dx * dx, 1e-12), 0, 1)
        inside |= (ys - y0 - t * dy) ** 2 + (xs - x0 - t * dx) ** 2 <= half_width ** 2
    return inside


def _ellipse(ys: np.ndarray, xs: np.ndarray, centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    return ((ys - centre[0]) / radii[0]) ** 2 + ((xs - centre[1]) / radii[1]) ** 2


def draw_face(identity: dict[str, Any], aus: np.ndarray, size: int, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A 5 × size × size float32 image (R, G, B, depth, thermal in [0, 1]) of ``identity`` showing
    ``aus`` (0/1 over :data:`PROCEDURAL_AUS`)."""
    from skimage.draw import polygon

    au = dict(zip(PROCEDURAL_AUS, (bool(a) for a in aus)))
    side = size * SCALE
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32) / side
    cy, cx = identity["centre"][0] + shift[0], identity["centre"][1] + shift[1]
    ry, rx = identity["radii"]
    rgb = np.empty((side, side, 3), dtype=np.float32)
    rgb[:] = identity["background"]
    face_level = _ellipse(ys, xs, (cy, cx), (ry, rx))
    face = face_level <= 1
    rgb[face] = identity["skin"]
    rgb[face & (ys < cy - 0.72 * ry)] = identity["hair"]  # a fringe of hair on top
    lid = identity["skin"] * 0.55
    eye_y, gap, eye = cy - 0.12, identity["eye_gap"], identity["eye_size"]
    brow_y = eye_y - 0.08 + (0.05 if au[4] else 0.0)
    for sign in (-1, 1):  # left and right: "inner" is the end toward the nose
        eye_x = cx + sign * gap
        if au[43]:
            rgb[_segments(ys, xs, [(eye_y, eye_x - eye), (eye_y, eye_x + eye)], 0.012)] = lid
        else:
            opening = _ellipse(ys, xs, (eye_y, eye_x), (0.6 * eye, eye)) <= 1
            rgb[opening] = (0.95, 0.95, 0.95)
            rgb[_ellipse(ys, xs, (eye_y, eye_x), (0.45 * eye, 0.45 * eye)) <= 1] = (0.15, 0.1, 0.05)
            if au[6]:  # lower lid raised: skin over the eye's lower part
                rgb[opening & (ys > eye_y + 0.15 * eye)] = identity["skin"] * 0.9
        if au[6]:
            crease = [(eye_y + 0.9 * eye, eye_x - eye), (eye_y + 1.2 * eye, eye_x), (eye_y + 0.9 * eye, eye_x + eye)]
            rgb[_segments(ys, xs, crease, 0.009)] = lid
        inner_x = cx + sign * (gap - 0.06 - (0.035 if au[4] else 0.0))
        outer_x = cx + sign * (gap + 0.07)
        inner_y = brow_y - (0.08 if au[1] else 0.0)
        outer_y = brow_y - (0.08 if au[2] else 0.0)
        rgb[_segments(ys, xs, [(inner_y, inner_x), ((inner_y + outer_y) / 2 - 0.01, (inner_x + outer_x) / 2),
                               (outer_y, outer_x)], identity["brow_width"] / 2)] = identity["hair"]
    nose = [(eye_y + 0.04, cx), (cy + 0.08, cx - 0.02), (cy + 0.09, cx + 0.02)]
    rgb[_segments(ys, xs, nose, 0.006)] = identity["skin"] * 0.7
    mouth_y, width = cy + 0.2, identity["mouth_width"]
    corner_y = mouth_y - (0.07 if au[12] else 0.0) + (0.07 if au[15] else 0.0)
    lip = np.array([0.65, 0.2, 0.25], dtype=np.float32)
    mouth_hole = np.zeros(ys.shape, dtype=bool)
    if au[25]:
        rows, cols = polygon(np.array([corner_y, mouth_y - 0.02, corner_y, mouth_y + 0.08]) * side,
                             np.array([cx - width, cx, cx + width, cx]) * side, shape=ys.shape)
        mouth_hole[rows, cols] = True
        rgb[mouth_hole] = (0.2, 0.02, 0.05)
    rgb[_segments(ys, xs, [(corner_y, cx - width), (mouth_y + (0.03 if au[25] else 0.0), cx), (corner_y, cx + width)],
                  0.014)] = lip

    depth = np.where(face, np.sqrt(np.clip(1 - face_level, 0, 1)), 0.0)
    depth = depth + 0.25 * np.exp(-(((ys - cy - 0.03) / 0.05) ** 2 + ((xs - cx) / 0.03) ** 2))
    depth = np.where(mouth_hole, depth * 0.6, depth)
    thermal = 0.15 + 0.35 * face
    for y, x, heat in ((eye_y, cx - gap, 0.35), (eye_y, cx + gap, 0.35), (mouth_y, cx, 0.6 if au[25] else 0.3),
                       (cy - 0.3 * ry, cx, 0.25)):
        thermal = thermal + heat * np.exp(-(((ys - y) / 0.06) ** 2 + ((xs - x) / 0.08) ** 2)) * face
    channels = np.concatenate([rgb, depth[..., None] / 1.25, np.clip(thermal, 0, 1)[..., None]], axis=-1)
    small = channels.reshape(size, SCALE, size, SCALE, 5).mean(axis=(1, 3))
    return np.ascontiguousarray(small.transpose(2, 0, 1).clip(0, 1), dtype=np.float32)


def render_faces(subjects: int, frames: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Every frame of every subject: uint8 images S·F × 5 × size × size, labels, subject index."""
    images = np.empty((subjects * frames, 5, size, size), dtype=np.uint8)
    labels = np.empty((subjects * frames, len(PROCEDURAL_AUS)), dtype=np.int64)
    for subject in range(subjects):
        rng = np.random.default_rng([seed, subject])
        identity = sample_identity(rng)
        for frame in range(frames):
            present = sample_aus(rng, identity["rates"])
            shift = tuple(rng.uniform(-0.02, 0.02, 2))
            images[subject * frames + frame] = np.round(draw_face(identity, present, size, shift) * 255)
            labels[subject * frames + frame] = present
    return {"images": images, "labels": labels, "subject": np.repeat(np.arange(subjects), frames)}


class ProceduralFaces(Dataset):
    """Procedural faces (module docstring) with exact labels over :data:`PROCEDURAL_AUS`: ``subjects``
    identities × ``frames`` frames at ``size`` px, the subjects of ``fold``'s ``split`` (3 parts, as
    :func:`procedural_parts` deals them; "all" for every subject). ``channels`` 3 (RGB) or 5 (RGB,
    depth, thermal). ``labelled=False`` gives label -1 (pre-training beside unlabelled faces).
    Rendered once per setting into a cache folder under the system's temp dir."""

    modality = "image"

    def __init__(self, split: str = "train", fold: int = 1, subjects: int = 12, frames: int = 60, size: int = 48,
                 channels: int = 3, seed: int = 0, labelled: bool = True, root: str | None = None) -> None:
        from maekit.data.bundled import demo_folder

        if channels not in (3, 5):
            raise ValueError(f"procedural faces have 3 (RGB) or 5 (RGB, depth, thermal) channels, got {channels}")
        if size < 16 or frames < 1:
            raise ValueError(f"procedural faces need size >= 16 and frames >= 1, got size {size}, frames {frames}")
        parts = procedural_parts(subjects)
        wanted = set(fold_subjects(parts, fold, split))

        def write(folder: Any) -> None:
            np.savez(folder / "faces.npz", **render_faces(subjects, frames, size, seed))

        folder = demo_folder("maekit_procedural_faces_v2", f"{subjects}-{frames}-{size}-{seed}", write, root)
        with np.load(folder / "faces.npz") as stored:
            names = np.array([f"P{k + 1:02d}" for k in range(subjects)])[stored["subject"]]
            keep = np.isin(names, sorted(wanted))
            self.images = stored["images"][keep, :channels]
            self.labels = stored["labels"][keep]
        self.subjects = names[keep].tolist()
        self.aus, self.channels, self.labelled = PROCEDURAL_AUS, channels, labelled

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = torch.from_numpy(self.images[index].astype(np.float32) / 255)
        if not self.labelled:
            return {"inputs": image, "label": -1}
        return {"inputs": image, "label": torch.from_numpy(self.labels[index].astype(np.float32))}


class LFWFaces(Dataset):
    """The 100 real faces of scikit-image's bundled ``lfw_subset`` (25 × 25 grey), resized to
    ``size``, as 1 or 3 (repeated) channels; unlabelled (label -1): RGB pre-training and pictures."""

    modality = "image"

    def __init__(self, size: int = 48, channels: int = 3) -> None:
        from skimage import data
        from skimage.transform import resize

        if channels not in (1, 3):
            raise ValueError(f"lfw faces are grey: channels 1 or 3, got {channels}")
        faces = data.lfw_subset()[:100]
        self.images = np.stack([resize(face, (size, size), order=3, anti_aliasing=True) for face in faces]).clip(0, 1)
        self.channels = channels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = torch.from_numpy(self.images[index].astype(np.float32))[None].expand(self.channels, -1, -1).clone()
        return {"inputs": image, "label": -1}
