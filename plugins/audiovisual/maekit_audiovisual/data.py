"""Paired audio-visual data: the video and the audio of the same clip, from one file (the audio
stream of an mp4/mkv/webm, decoded with PyAV) or from parallel files (a video and a WAV/FLAC/...).

Every dataset gives ``{"inputs": uint8 frames (T, H, W, 3), "audio": (1, frames, bins) log-mel
spectrogram, "label": int}``. The video clip is sampled as maekit-video samples it (``clip``: which
frames, seeded by the training view per sample position, so resume stays exact) and turned into a
float clip by the config's ``data.transform`` (e.g. ``videomae_augment``); the audio is cut, turned
into a spectrogram by the dataset's own ``audio`` transform (a registered waveform transform:
``audio_fbank`` or, for training, ``audio_mae_augment``; its random draws are seeded the same way)
— the per-modality transforms.

``audio_seconds``: None takes the whole audio track (AV-MAE's 10 s AudioSet clips: the spectrogram
covers the clip while the video is a 16-frame window of it); a number takes that many seconds
centred on the sampled video clip (clamped to the track), so the sound is the one heard while the
frames play. A file without an audio stream, an unreadable one, or a listed file that is missing is
an error naming the file; ``on_error="skip"`` leaves missing ones out, serves the next readable
clip in place of a broken one, and lists each in ``skipped_files``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import torch
from maekit_audio.frontend import MIN_SAMPLES, load_waveform
from maekit_video.data import Source, VideoDataset, list_videos
from maekit_video.io import VIDEO_EXTENSIONS, VideoInfo

from maekit.data.skipping import without_missing

__all__ = ["AudioVisualDataset", "AudioVisualCSV", "AudioVisualFolder", "VGGSoundAV", "audio_window",
           "SOUND_VIDEO_EXTENSIONS"]

#: the video files that can carry a sound track (maekit-video reads GIFs too, which never do)
SOUND_VIDEO_EXTENSIONS = tuple(e for e in VIDEO_EXTENSIONS if e != ".gif")


def audio_window(info: VideoInfo, clips: list[list[int]], seconds: float | None, sample_rate: int,
                 total: int) -> tuple[int, int]:
    """The sample range [start, stop) of the audio that goes with the clip(s): the whole track
    (``seconds`` None), or ``seconds`` centred on the middle of the clips' frames, shifted to fit
    inside the track (the whole track when it is shorter)."""
    if seconds is None:
        return 0, total
    first, last = min(min(c) for c in clips), max(max(c) for c in clips)
    centre = (first + last + 1) / 2 / info.fps  # the middle of the frames' time span, in seconds
    length = min(total, int(round(seconds * sample_rate)))
    start = int(round(centre * sample_rate)) - length // 2
    start = max(0, min(start, total - length))
    return start, start + length


class AudioVisualDataset(VideoDataset):
    """What every audio-visual dataset shares: maekit-video's clip sampling, reading and
    ``on_error`` policy for the frames, plus each item's audio source (a separate file, or the
    video file's own audio stream) and the audio transform (module docstring)."""

    modality = "audiovisual"

    def __init__(self, audio: dict[str, Any] | None = None, audio_seconds: float | None = None,
                 sample_rate: int = 16000, mono: str = "first", **options: Any) -> None:
        from maekit.registry import build

        super().__init__(**options)
        if audio_seconds is not None and not audio_seconds > 0:
            raise ValueError(f"audio_seconds must be positive (or None: the whole track), got {audio_seconds!r}")
        self.audio_seconds, self.sample_rate, self.mono = audio_seconds, int(sample_rate), mono
        self.audio_transform = build("transform", audio or dict(type="audio_fbank", sample_rate=sample_rate))
        self.audio_files: dict[Path, Path] = {}  # video file → its separate audio file, where there is one

    def set_pairs(self, pairs: list[tuple[Path, Path | None, int]], source: str) -> None:
        """Keep the pairs whose files exist (a missing video or audio file is an error naming it, or
        with ``on_error="skip"`` is left out and listed)."""
        # a listed audio file that is missing: core's rule for missing files (error naming it, or left out and listed)
        kept = without_missing(pairs, lambda pair: str(pair[1]), lambda pair: pair[1] is None or pair[1].is_file(),
                               self.on_error, self.skipped_files, source)
        paired: dict[Path, Path | None] = {}
        for video, audio, _ in kept:  # one audio source per video: a second pairing would be lost silently
            if paired.setdefault(video, audio) != audio:
                raise ValueError(f"{source} pairs {video} with two audio sources ({paired[video]} and {audio}); list each "
                                 f"video once")
        self.audio_files = {video: audio for video, audio, _ in kept if audio is not None}
        self.set_items([(video, label) for video, _, label in kept], source)

    def audio_of(self, video: Source, info: VideoInfo, clips: list[list[int]]) -> torch.Tensor:
        """The spectrogram (1, frames, bins) of the audio that goes with the clip(s)."""
        path = self._path(video)
        source = self.audio_files.get(path, path)
        waveform = load_waveform(source, self.sample_rate, self.mono)  # a ValueError names the file
        start, stop = audio_window(info, clips, self.audio_seconds, self.sample_rate, waveform.shape[-1])
        if stop - start < MIN_SAMPLES * self.sample_rate // 16000:
            raise ValueError(f"{source}: the audio around the clip is too short for one 25 ms filterbank frame")
        spectrogram = self.audio_transform(waveform[:, start:stop])
        if spectrogram.dim() != 3:
            raise ValueError(f"the audio transform must give a (1, frames, bins) spectrogram, got {tuple(spectrogram.shape)}")
        return spectrogram

    def source_name(self, index: int) -> str:
        path = self._path(self.items[index][0])
        audio = self.audio_files.get(path)
        return f"{path}" if audio is None else f"{path} + {audio}"

    def sample(self, index: int) -> dict[str, Any]:
        video, label = self.items[index]
        info, clips = self.clip_frames(video)
        audio = self.audio_of(video, info, clips)  # first: a file without sound fails before decoding frames
        return {"inputs": self.read_clips(video, clips), "audio": audio, "label": label}


def _class_index(names: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    classes = sorted(set(names))
    return classes, {name: i for i, name in enumerate(classes)}


class AudioVisualCSV(AudioVisualDataset):
    """A CSV with a header naming the columns ``video`` (required), ``audio`` (optional: a separate
    audio file; empty or absent: the video file's own audio stream) and ``label`` (optional: an
    integer class, or a class name — names are numbered in sorted order). Paths are relative to
    ``root`` (default: the CSV's folder). ``classes``: the class names in order, so that a train and
    a test list number them alike."""

    def __init__(self, csv_file: str | Path, root: str | Path | None = None, classes: Sequence[str] | None = None,
                 **options: Any) -> None:
        super().__init__(**options)
        csv_file = Path(csv_file)
        if not csv_file.is_file():
            raise ValueError(f"{csv_file}: audio-visual list not found")
        base = Path(root) if root is not None else csv_file.parent
        with csv_file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            if "video" not in fields:
                raise ValueError(f"{csv_file}: the header must name a 'video' column (and optionally 'audio', 'label'); "
                                 f"got {fields}")
            rows = list(reader)
        if not rows:
            raise ValueError(f"{csv_file}: no rows after the header")
        labels = [(row.get("label") or "").strip() for row in rows]
        if classes is not None:
            self.classes = list(classes)
        elif any(labels) and not all(label.lstrip("-").isdigit() for label in labels if label):
            self.classes = _class_index([label for label in labels if label])[0]
        index = {name: i for i, name in enumerate(self.classes)}
        pairs = []
        for number, (row, label) in enumerate(zip(rows, labels), start=2):
            if not (row.get("video") or "").strip():
                raise ValueError(f"{csv_file}: line {number} has no video path")
            if label and not label.lstrip("-").isdigit() and label not in index:
                raise ValueError(f"{csv_file}: line {number}: label {label!r} is not among the classes {self.classes}")
            value = -1 if not label else index[label] if label in index else int(label)
            audio = (row.get("audio") or "").strip()
            pairs.append((base / row["video"].strip(), base / audio if audio else None, value))
        if not self.classes and any(value >= 0 for _, _, value in pairs):
            self.classes = [str(i) for i in range(max(value for _, _, value in pairs) + 1)]
        self.set_pairs(pairs, str(csv_file))


class AudioVisualFolder(AudioVisualDataset):
    """Any folder of videos with sound, searched recursively (label −1); ``class_folders=True``: the
    first-level folders are the classes (sorted names)."""

    def __init__(self, root: str | Path, class_folders: bool = False, extensions: Sequence[str] = SOUND_VIDEO_EXTENSIONS,
                 **options: Any) -> None:
        super().__init__(**options)
        items, self.classes = list_videos(root, class_folders, extensions)
        self.set_pairs([(path, None, label) for path, label in items], str(root))


class VGGSoundAV(AudioVisualDataset):
    """VGGSound's ``vggsound.csv`` (no header: YouTube id, start second, label text, train|test);
    the clip ``<video_dir>/<filename>.mp4`` with ``filename`` formatted from ``ytid`` and ``start``
    (an int; default ``{ytid}_{start:06d}``, the released clips' names) holds both streams, or
    ``audio_dir`` holds the audio as ``<filename>.<ext>`` (``audio_extension``, default wav). Classes
    are the sorted label texts of the whole CSV (309 in the release), so both splits number them
    alike."""

    def __init__(self, csv_file: str | Path, video_dir: str | Path, split: str = "train",
                 audio_dir: str | Path | None = None, filename: str = "{ytid}_{start:06d}",
                 video_extension: str = "mp4", audio_extension: str = "wav", **options: Any) -> None:
        super().__init__(**options)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        csv_file, video_dir = Path(csv_file), Path(video_dir)
        if not csv_file.is_file():
            raise ValueError(f"{csv_file}: VGGSound list (vggsound.csv) not found")
        with csv_file.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
        if not rows:
            raise ValueError(f"{csv_file}: empty; expected rows youtube_id,start_second,label,train|test")
        for number, row in enumerate(rows, start=1):
            if len(row) != 4 or row[3] not in ("train", "test") or not row[1].lstrip("-").isdigit():
                raise ValueError(f"{csv_file}: row {number} must be youtube_id,start_second,label,train|test; got {row}")
        self.classes, index = _class_index([row[2] for row in rows])
        pairs = []
        for row in rows:
            if row[3] != split:
                continue
            name = filename.format(ytid=row[0], start=int(row[1]))
            audio = Path(audio_dir) / f"{name}.{audio_extension}" if audio_dir is not None else None
            pairs.append((video_dir / f"{name}.{video_extension}", audio, index[row[2]]))
        self.set_pairs(pairs, str(csv_file))
