"""The demo's videos: scikit-learn's handwritten digits (1,797 real 8×8 scans, bundled in its wheel)
scaled to 24×24 and moving across a 32×32 canvas for 16 frames — procedural motion of real digits.
Each clip moves right, left, down or up by one pixel every second frame from a random start (so
one frame does not give the direction away), and is labelled by digit *and* direction (40
classes): the label needs time.
The clips are written as real H.264 .mp4 files with PyAV, listed in VideoMAE's ``train.csv`` /
``test.csv`` format ("path label"), and read back through :class:`maekit_video.data.VideoList`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maekit.data.bundled import demo_folder
from maekit_video.data import VideoList
from maekit_video.io import write_video

__all__ = ["DIRECTIONS", "moving_digit_frames", "digit_split", "write_moving_digits", "MovingDigits",
           "write_moving_digit_davis"]

DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (rows, columns) per frame: right, left, down, up
CANVAS, DIGIT, FRAMES = 32, 24, 16


def moving_digit_frames(digit: np.ndarray, direction: int, rng: np.random.Generator, frames: int = FRAMES) -> np.ndarray:
    """(frames, 32, 32, 3) uint8: the 8×8 digit (0..16) scaled ×3, moving one pixel every second frame."""
    sprite = np.kron(digit / 16.0, np.ones((3, 3)))
    dy, dx = DIRECTIONS[direction]
    travel = (frames - 1) // 2
    room = CANVAS - DIGIT

    def start(step: int) -> int:  # a start that keeps the whole path on the canvas
        return int(rng.integers(0, room - travel + 1)) + (travel if step < 0 else 0) if step else int(rng.integers(0, room + 1))

    y0, x0 = start(dy), start(dx)
    video = np.zeros((frames, CANVAS, CANVAS), dtype=np.float64)
    for t in range(frames):
        y, x = y0 + dy * (t // 2), x0 + dx * (t // 2)
        video[t, y:y + DIGIT, x:x + DIGIT] = sprite
    return np.repeat((video * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


def digit_split(count: int | None, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator, set[int]]:
    """scikit-learn's digits (the first ``count``): images, labels, the generator that then draws
    each clip's motion, and the indices of the test clips (``test_fraction`` of them, seeded)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, targets = digits.images[:count], digits.target[:count]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    return images, targets, rng, set(order[: int(len(order) * test_fraction)].tolist())


def write_moving_digits(root: str | Path, test_fraction: float = 0.25, seed: int = 0, count: int | None = None) -> int:
    """Write every digit (or the first ``count``) as a moving clip (``<split>/<n>.mp4``) and
    ``train.csv`` / ``test.csv``."""
    root = Path(root)
    images, targets, rng, test = digit_split(count, test_fraction, seed)
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for number, (image, digit) in enumerate(zip(images, targets)):
        direction = int(rng.integers(len(DIRECTIONS)))
        split = "test" if number in test else "train"
        path = write_video(root / split / f"{number:04d}.mp4", moving_digit_frames(image, direction, rng), fps=8)
        lines[split].append(f"{path.relative_to(root)} {int(digit) * len(DIRECTIONS) + direction}")
    for split, rows in lines.items():
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return len(images)


class MovingDigits(VideoList):
    """The demo's clips (made once per machine in the temporary directory, or under ``root``),
    read through the real video-list loader: 1,348 training and 449 test clips, 40 classes
    (``count``: the first ``count`` digits only, for quick checks)."""

    modality = "video"

    def __init__(self, split: str = "train", root: str | Path | None = None, count: int | None = None,
                 **options: Any) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        folder = demo_folder("maekit_moving_digits", f"v2 canvas={CANVAS} digit={DIGIT} frames={FRAMES} count={count}",
                             lambda path: write_moving_digits(path, count=count), root)
        options.setdefault("clip", dict(sampling="consecutive", num_frames=8, stride=1))
        options.setdefault("train", split == "train")
        super().__init__(folder / f"{split}.csv", root=folder, **options)
        self.classes = [f"{digit}-{name}" for digit in range(10) for name in ("right", "left", "down", "up")]


def write_moving_digit_davis(root: str | Path, clips: VideoList, count: int = 40, threshold: int = 128) -> Path:
    """The first ``count`` of ``clips`` (the demo's test clips) as DAVIS-2017 sequences under ``root``: every decoded frame a
    JPEG (``JPEGImages/480p/<n>/00000.jpg`` ...), the digit's pixels (mean brightness ≥ ``threshold``
    in the decoded frame) as object 1 of a palette PNG (``Annotations/480p/...``), listed in
    ``ImageSets/2017/val.txt``: ground truth that comes free with the digits, for label propagation."""
    from PIL import Image

    from maekit_video.io import probe_video, read_frames

    root = Path(root)
    names = []
    for number in range(min(count, len(clips))):
        path = clips.source_name(number)
        frames = read_frames(path, range(probe_video(path).num_frames)).numpy()
        name = f"digit{number:03d}"
        for folder in ("JPEGImages", "Annotations"):
            (root / folder / "480p" / name).mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(frames):
            Image.fromarray(frame).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", quality=95)
            mask = Image.fromarray((frame.mean(-1) >= threshold).astype(np.uint8), mode="P")
            mask.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # DAVIS's first two palette colours
            mask.save(root / "Annotations" / "480p" / name / f"{t:05d}.png")
        names.append(name)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")
    return root
