"""The demo's speech: the ten digits "zero".."nine" spoken by espeak-ng (a Debian package; `.ci/setup`
installs it) in several English accents and voice variants, at several speeds and pitches — real
synthesised speech made on this machine, not recordings of people. Each (accent, variant, speed,
pitch) is one "speaker". The clips are written as 22.05 kHz WAV files in Google Speech Commands'
layout (``<word>/<speaker>_nohash_0.wav``, ``validation_list.txt``, ``testing_list.txt``; speakers
assigned to splits by Speech Commands' own hashing rule) and read back through
:class:`maekit_audio.data.SpeechCommands`, which resamples them to 16 kHz.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from maekit.data.bundled import demo_folder

__all__ = ["DIGITS", "ACCENTS", "VARIANTS", "which_set", "write_spoken_digits", "SpokenDigits"]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029")
VARIANTS = ("", "+f3", "+m3")
SPEEDS = (130, 165, 200)
PITCHES = (35, 50, 70)
MAX_PERCENT = 2**27 - 1


def which_set(filename: str, validation_percentage: float = 10, testing_percentage: float = 20) -> str:
    """Speech Commands' split rule (its README's ``which_set``): the speaker part of the name
    (before ``_nohash_``) hashed with SHA-1, so a speaker's clips all land in one split."""
    speaker = re.sub(r"_nohash_.*$", "", Path(filename).name)
    percent = (int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % (MAX_PERCENT + 1)) * (100.0 / MAX_PERCENT)
    if percent < validation_percentage:
        return "validation"
    if percent < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def _espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise ValueError("espeak-ng is not installed (the audio demo makes its speech with it): "
                         "sudo apt-get install espeak-ng")
    return found


def write_spoken_digits(root: str | Path, accents: Sequence[str] = ACCENTS, variants: Sequence[str] = VARIANTS,
                        speeds: Sequence[int] = SPEEDS, pitches: Sequence[int] = PITCHES) -> int:
    """Write every (digit, speaker) clip under ``root`` in the Speech Commands layout; returns the
    number of clips."""
    root, espeak = Path(root), _espeak()
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    count = 0
    for accent in accents:
        for variant in variants:
            for speed in speeds:
                for pitch in pitches:
                    speaker = re.sub(r"[^a-z0-9]", "", f"{accent}{variant}s{speed}p{pitch}")
                    for word in DIGITS:
                        relative = f"{word}/{speaker}_nohash_0.wav"
                        (root / word).mkdir(parents=True, exist_ok=True)
                        subprocess.run([espeak, "-v", accent + variant, "-s", str(speed), "-p", str(pitch),
                                        "-w", str(root / relative), word], check=True, capture_output=True)
                        split = which_set(relative)
                        if split in lists:
                            lists[split].append(relative)
                        count += 1
    (root / "validation_list.txt").write_text("".join(f"{name}\n" for name in sorted(lists["validation"])))
    (root / "testing_list.txt").write_text("".join(f"{name}\n" for name in sorted(lists["testing"])))
    return count


class SpokenDigits(Dataset):
    """The demo's spoken digits (see the module docstring) under ``root`` (default: a folder in the
    system's temporary directory named by the settings, made on first use), read with
    :class:`~maekit_audio.data.SpeechCommands`; ``split`` train / validation / test."""

    modality = "audio"

    def __init__(self, split: str = "train", accents: Sequence[str] = ACCENTS, variants: Sequence[str] = VARIANTS,
                 speeds: Sequence[int] = SPEEDS, pitches: Sequence[int] = PITCHES, root: str | Path | None = None,
                 **options: Any) -> None:
        from maekit_audio.data import SpeechCommands

        settings = f"{list(accents)}-{list(variants)}-{list(speeds)}-{list(pitches)}-v1"
        self.root = demo_folder("maekit_audio_demo", settings,
                                lambda folder: write_spoken_digits(folder, accents, variants, speeds, pitches), root)
        self.source = SpeechCommands(self.root, split=split, words=DIGITS, **options)
        self.classes = self.source.classes
        self.samples = [self.source[i] for i in range(len(self.source))]  # decode and resample once, up front

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self.samples[index])
