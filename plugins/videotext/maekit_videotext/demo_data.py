"""The demo's captioned clips: scikit-learn's handwritten digits (real 8×8 scans bundled in its
wheel) moving across a 32×32 canvas for 16 frames (maekit-video's procedural motion), written as
H.264 .mp4 with PyAV, each with captions generated from the clip's digit and direction by templates
and synonyms ("a seven drifting to the left", "the digit 3 heading upward"). A caption names both,
so neither one frame nor the digit alone finds the clip: a masked digit word can only be recovered
from the pixels, a masked direction word only from the motion.

Training clips carry two captions each (CSV ``video,caption`` rows, read back by
:class:`~maekit_videotext.data.VideoCaptions`). The held-out digits make retrieval galleries of 40
clips, one per (digit, direction), so that a caption matches exactly one clip of its gallery; each
gallery is its own CSV (``test_<g>.csv``) with one caption per clip.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from maekit_video.demo_data import CANVAS, DIGIT, DIRECTIONS, FRAMES, moving_digit_frames
from maekit_video.io import write_video

from maekit.data.bundled import demo_folder
from maekit_videotext.data import VideoCaptions

__all__ = ["caption_for", "write_captioned_moving_digits", "CaptionedMovingDigits", "GALLERY_SIZE"]

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VERBS = ("moving", "drifting", "sliding", "going", "heading", "travelling")
# the order of maekit-video's DIRECTIONS: right, left, down, up
DIRECTION_WORDS = (("to the right", "right", "rightward"), ("to the left", "left", "leftward"),
                   ("down", "downward", "towards the bottom"), ("up", "upward", "towards the top"))
TEMPLATES = ("a {digit} {verb} {direction}", "the digit {digit} {verb} {direction}",
             "a handwritten {digit} {verb} {direction}", "{digit} {verb} {direction}")
GALLERY_SIZE = 10 * len(DIRECTIONS)


def caption_for(digit: int, direction: int, rng: np.random.Generator) -> str:
    """One caption of a clip: a template with the digit as a word or a numeral, a verb and a direction phrase."""
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    name = NUMBER_WORDS[digit] if rng.random() < 0.5 else str(digit)
    return template.format(digit=name, verb=VERBS[int(rng.integers(len(VERBS)))],
                           direction=DIRECTION_WORDS[direction][int(rng.integers(len(DIRECTION_WORDS[direction])))])


def write_captioned_moving_digits(root: str | Path, galleries: int = 3, captions_per_clip: int = 2, seed: int = 0,
                                  count: int | None = None) -> dict[str, int]:
    """Write the training clips (``train/<n>.mp4``, ``train.csv``) and ``galleries`` test galleries
    (``test/<g>_<n>.mp4``, ``test_<g>.csv``); ``count`` limits the training clips (quick checks)."""
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    test_images: dict[int, list[int]] = {d: [] for d in range(10)}
    train_images = []
    for image in order.tolist():  # the first 4·galleries images of each digit are held out
        digit = int(digits.target[image])
        (test_images[digit] if len(test_images[digit]) < len(DIRECTIONS) * galleries else train_images).append(image)
    train_images = train_images[:count]
    rows = ["video,caption"]
    for number, image in enumerate(train_images):
        digit, direction = int(digits.target[image]), int(rng.integers(len(DIRECTIONS)))
        path = write_video(root / "train" / f"{number:04d}.mp4", moving_digit_frames(digits.images[image], direction, rng), fps=8)
        rows += [f"{path.relative_to(root)},{caption_for(digit, direction, rng)}" for _ in range(captions_per_clip)]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    for gallery in range(galleries):
        rows = ["video,caption"]
        for digit in range(10):
            for direction in range(len(DIRECTIONS)):
                image = test_images[digit][gallery * len(DIRECTIONS) + direction]
                path = write_video(root / "test" / f"{gallery}_{digit}_{direction}.mp4",
                                   moving_digit_frames(digits.images[image], direction, rng), fps=8)
                rows.append(f"{path.relative_to(root)},{caption_for(digit, direction, rng)}")
        (root / f"test_{gallery}.csv").write_text("\n".join(rows) + "\n")
    return {"train": len(train_images), "test": galleries * GALLERY_SIZE}


class CaptionedMovingDigits(VideoCaptions):
    """The demo's clips and captions (made once per machine in the temporary directory, or under
    ``root``), read through the real caption-file loader. ``split``: ``"train"`` (1,677 clips, two
    captions each) or ``"test_<g>"`` (gallery g of 40 clips, one caption each; ``galleries`` of
    them). ``count``: the first ``count`` training clips only, for quick checks. Clips of 8 frames
    at stride 1 by default."""

    def __init__(self, split: str = "train", root: str | Path | None = None, count: int | None = None,
                 galleries: int = 3, **options: Any) -> None:
        valid = ["train"] + [f"test_{g}" for g in range(galleries)]
        if split not in valid:
            raise ValueError(f"split must be one of {', '.join(valid)}, got {split!r}")
        folder = demo_folder("maekit_captioned_moving_digits",
                             f"v1 canvas={CANVAS} digit={DIGIT} frames={FRAMES} count={count} galleries={galleries}",
                             lambda path: write_captioned_moving_digits(path, galleries=galleries, count=count), root)
        options.setdefault("clip", dict(sampling="consecutive", num_frames=8, stride=1))
        options.setdefault("train", split == "train")
        super().__init__(folder / f"{split}.csv", root=folder, **options)
