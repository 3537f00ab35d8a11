"""The demo's audio-visual clips: a moving handwritten digit (scikit-learn's 1,797 real 8×8 scans,
moved procedurally over a 32×32 canvas for 16 frames, as maekit-video's demo) with the same digit
spoken by espeak-ng (real synthesised speech made on this machine, maekit-audio's demo speech: six
English accents × three voice variants × three speeds × three pitches) in the clip's one second:
the recordings last 0.47–1.08 s (0.74 s on average); each is placed at a random moment, the few
longer than 1 s are cut. (2 s clips were measured first: most of each spectrogram was silence, and
pre-training lost to random init on every linear probe.) Each clip is one real .mp4 file — H.264
video at 16 fps and an AAC audio track at 16 kHz — written with PyAV and read back through
:class:`~maekit_audiovisual.data.AudioVisualCSV`, which decodes both streams of the same file. The
label is the digit (10 classes): the picture and the sound each carry it. Speakers keep Speech
Commands' split: test clips are spoken by voices never heard in training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maekit.data.bundled import demo_folder
from maekit_audiovisual.data import AudioVisualCSV

__all__ = ["write_talking_digits", "TalkingDigits", "SECONDS", "FPS"]

FPS, FRAMES = 16, 16
SECONDS = FRAMES / FPS
RATE = 16000


def _speech_by_digit(split: str, speakers: dict[str, Any]) -> dict[int, list[np.ndarray]]:
    """The demo speech of one Speech Commands split, 16 kHz mono, grouped by digit (``speakers``:
    the accents, variants, speeds and pitches to synthesise; default all)."""
    from maekit_audio.demo_data import SpokenDigits

    speech = SpokenDigits(split=split, **speakers)
    grouped: dict[int, list[np.ndarray]] = {digit: [] for digit in range(10)}
    for index in range(len(speech)):
        sample = speech[index]
        grouped[int(sample["label"])].append(sample["inputs"][0].numpy())
    return grouped


def write_talking_digits(root: str | Path, count: int | None = None, test_fraction: float = 0.25, seed: int = 0,
                         speakers: dict[str, Any] | None = None) -> int:
    """Write the clips (``<split>/<n>.mp4``) and ``train.csv`` / ``test.csv`` (columns video, label)."""
    from maekit_video.demo_data import DIRECTIONS, digit_split, moving_digit_frames
    from maekit_video.io import write_video

    root = Path(root)
    images, targets, rng, test = digit_split(count, test_fraction, seed)
    speech = {split: _speech_by_digit(split, dict(speakers or {})) for split in ("train", "test")}
    if not all(speech["test"].values()):
        raise ValueError("the chosen speakers leave the test split without speech: add speakers")
    rows: dict[str, list[str]] = {"train": [], "test": []}
    samples = int(SECONDS * RATE)
    for number, (image, digit) in enumerate(zip(images, targets)):
        split = "test" if number in test else "train"
        frames = moving_digit_frames(image, int(rng.integers(len(DIRECTIONS))), rng, FRAMES)
        voices = speech[split][int(digit)]
        spoken = voices[int(rng.integers(len(voices)))][:samples]
        track = np.zeros((1, samples), dtype=np.float32)
        start = int(rng.integers(0, samples - len(spoken) + 1))
        track[0, start:start + len(spoken)] = spoken
        path = write_video(root / split / f"{number:04d}.mp4", frames, fps=FPS, audio=track, sample_rate=RATE)
        rows[split].append(f"{path.relative_to(root)},{int(digit)}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("video,label\n" + "\n".join(lines) + "\n")
    return len(images)


class TalkingDigits(AudioVisualCSV):
    """The demo's clips (made once per machine in the temporary directory, or under ``root``), read
    through the real audio-visual CSV loader: 75 % training and 25 % test clips, 10 classes
    (``count``: the first ``count`` digits only, ``speakers``: fewer voices — maekit-audio's
    ``SpokenDigits`` settings — for quick checks). The spectrogram defaults to 64
    mel bins over the whole 1 s track, cropped to 96 frames."""

    def __init__(self, split: str = "train", root: str | Path | None = None, count: int | None = None,
                 speakers: dict[str, Any] | None = None, **options: Any) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        settings = f"v2 frames={FRAMES} fps={FPS} rate={RATE} count={count} speakers={sorted((speakers or {}).items())}"
        folder = demo_folder("maekit_talking_digits", settings,
                             lambda path: write_talking_digits(path, count=count, speakers=speakers), root)
        options.setdefault("clip", dict(sampling="consecutive", num_frames=8, stride=2))
        options.setdefault("train", split == "train")
        options.setdefault("audio", dict(type="audio_fbank", num_mel_bins=64, target_length=96, stats="speechcommands"))
        super().__init__(folder / f"{split}.csv", root=folder, classes=[str(d) for d in range(10)], **options)
