"""Video datasets in the on-disk formats of the field, clip sampling, and the video transforms.

Every dataset gives ``{"inputs": uint8 frames (T, H, W, 3), "label": int}`` — (K, T, H, W, 3) when
``test_clips`` K > 1 — and the transform crops, resizes and normalises them into (C, T, H, W)
float clips. Which frames a clip takes (``clip``) is drawn while reading, from torch's generator,
which maekit's training view seeds per sample position (resume stays exact):

- ``dict(sampling="consecutive", num_frames=16, stride=4)``: VideoMAE (K400 stride 4, SSv2 2);
  ``pad=True`` lets a shorter video repeat its last frame, as the reference's loader does;
- ``dict(sampling="window", num_frames=16, seconds=2.7)``: OmniMAE, frames spread over a window;
- ``dict(sampling="segments", num_frames=16)``: TSN segments (SSv2 fine-tuning);
- ``dict(sampling="pair", min_gap=4, max_gap=48)``: two frames a gap apart (SiamMAE).

``train=False`` makes the choice deterministic (centred clip, middle of each segment) and
``test_clips`` K spreads K clips evenly for multi-view testing.

Listed files that are missing are found when the dataset is built; unreadable, empty and
too-short ones when read. ``on_error="raise"`` (default) names the file; ``"skip"`` leaves
missing files out, serves the next readable video in place of a broken one, and lists each in
``skipped_files``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from maekit.data.clips import ClipTooShort, consecutive_frames, evaluation_starts, frame_pair, segment_frames, window_frames
from maekit.data.samples import IMAGENET_MEAN, IMAGENET_STD
from maekit.data.skipping import check_on_error, first_readable, without_missing
from maekit_video.io import (
    VIDEO_EXTENSIONS,
    VideoInfo,
    check_decoder,
    frame_folder_info,
    probe_video,
    read_frame_folder,
    read_frames,
)

__all__ = ["VideoDataset", "VideoList", "RawframeList", "KineticsCSV", "SomethingSomethingV2", "UCF101", "HMDB51",
           "VideoFolder", "list_videos", "ClipSampler", "VideoMAEAugment", "VideoResizedCropAugment", "VideoEvalTransform"]


class ClipSampler:
    """Frame indices of the clip(s) one read takes (see the module docstring for ``sampling``)."""

    KEYS = {"consecutive": {"num_frames", "stride"}, "window": {"num_frames", "seconds"},
            "segments": {"num_frames"}, "pair": {"min_gap", "max_gap"}}
    OPTIONAL = {"consecutive": {"pad"}}

    def __init__(self, sampling: str = "consecutive", **options: Any) -> None:
        if sampling not in self.KEYS:
            raise ValueError(f"clip sampling must be one of {', '.join(self.KEYS)}, got {sampling!r}")
        unknown = sorted(set(options) - self.KEYS[sampling] - self.OPTIONAL.get(sampling, set()))
        missing = sorted(self.KEYS[sampling] - set(options))
        if unknown or missing:
            raise ValueError(f"clip sampling {sampling!r} takes {', '.join(sorted(self.KEYS[sampling]))}; "
                             f"got unknown {unknown or 'none'}, missing {missing or 'none'}")
        self.sampling, self.options = sampling, options

    def clips(self, info: VideoInfo, train: bool, test_clips: int) -> list[list[int]]:
        o = self.options
        if self.sampling == "consecutive":
            pad = bool(o.get("pad", False))
            if train:
                return [consecutive_frames(info.num_frames, o["num_frames"], o["stride"], pad=pad)]
            # test views as VideoMAE: starts spread over the stride-subsampled frames
            subsampled = -(-info.num_frames // o["stride"])
            return [consecutive_frames(info.num_frames, o["num_frames"], o["stride"], o["stride"] * start, pad=pad)
                    for start in evaluation_starts(subsampled, o["num_frames"], test_clips)]
        if self.sampling == "window":
            if train:
                return [window_frames(info.num_frames, info.fps, o["num_frames"], o["seconds"])]
            window = min(max(int(round(o["seconds"] * info.fps)), o["num_frames"]), info.num_frames)
            return [window_frames(info.num_frames, info.fps, o["num_frames"], o["seconds"], start / info.fps)
                    for start in evaluation_starts(info.num_frames, window, test_clips)]
        if self.sampling == "segments":
            if test_clips > 1:
                raise ValueError("segments sampling gives one view per video; set test_clips=1 (crops give more views)")
            return [segment_frames(info.num_frames, o["num_frames"], train)]
        return [frame_pair(info.num_frames, o["min_gap"], o["max_gap"])]


Source = Path | tuple[Path, int]  # a video file, or a frame folder and its frame count


class VideoDataset(Dataset):
    """What every video dataset shares: a list of (video, label), clip sampling, and the
    ``on_error`` policy. ``seek``: start decoding at the key frame before the clip (fast on long
    videos) rather than at the first frame. ``decoder``: "pyav" (required, the default) or
    "torchcodec" (optional: ``pip install 'maekit-video[torchcodec]'`` and FFmpeg's libraries)."""

    frame_template = "img_{:05d}.jpg"
    frame_start_index = 1
    frame_rate = 30.0

    def __init__(self, clip: dict[str, Any] | None = None, train: bool = True, test_clips: int = 1,
                 on_error: str = "raise", seek: bool = True, decoder: str = "pyav") -> None:
        self.decoder = check_decoder(decoder)
        self.sampler = ClipSampler(**(clip or dict(sampling="consecutive", num_frames=16, stride=4)))
        if not isinstance(test_clips, int) or test_clips < 1:
            raise ValueError(f"test_clips must be a positive int, got {test_clips!r}")
        self.train, self.test_clips, self.seek = train, test_clips, seek
        self.on_error = check_on_error(on_error)
        self.items: list[tuple[Source, int]] = []
        self.classes: list[str] = []
        self.skipped_files: dict[str, str] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def set_items(self, items: list[tuple[Source, int]], source: str) -> None:
        """Keep the listed videos that exist; a missing one is an error naming it (and how many
        more are missing), or with ``on_error="skip"`` is left out and listed in ``skipped_files``."""
        self.items = without_missing(items, lambda item: str(self._path(item[0])), lambda item: self._exists(item[0]),
                                     self.on_error, self.skipped_files, source)
        if not self.items:
            raise ValueError(f"{source}: no video to read")

    @staticmethod
    def _path(video: Source) -> Path:
        return video[0] if isinstance(video, tuple) else video

    def _exists(self, video: Source) -> bool:
        return self._path(video).is_dir() if isinstance(video, tuple) else video.is_file()

    def source_name(self, index: int) -> str:
        return str(self._path(self.items[index][0]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = first_readable(index, len(self.items), self.sample, self.source_name, self.on_error,
                                self.skipped_files, "video")
        if sample is None:
            raise ValueError("no readable video left")
        return sample

    def info(self, video: Source) -> VideoInfo:
        if isinstance(video, tuple):
            info = frame_folder_info(video[0], self.frame_template, self.frame_start_index, video[1])
            return VideoInfo(info.num_frames, self.frame_rate)
        return probe_video(video)

    def read(self, video: Source, indices: list[int]) -> torch.Tensor:
        if isinstance(video, tuple):
            return read_frame_folder(video[0], indices, self.frame_template, self.frame_start_index)
        return read_frames(video, indices, self.seek, self.decoder)

    def clip_frames(self, video: Source) -> tuple[VideoInfo, list[list[int]]]:
        """The video's length and rate, and the frame indices of the clip(s) this read takes."""
        info = self.info(video)
        try:
            return info, self.sampler.clips(info, self.train, self.test_clips)
        except ClipTooShort as error:
            raise ValueError(f"{self._path(video)}: {error}") from None

    def read_clips(self, video: Source, clips: list[list[int]]) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) of one clip, (K, T, H, W, 3) of several, decoded once."""
        union = sorted({i for clip in clips for i in clip})
        frames = self.read(video, union)  # one decode for every clip
        where = {frame: row for row, frame in enumerate(union)}
        stacked = torch.stack([frames[[where[i] for i in clip]] for clip in clips])
        return stacked if len(clips) > 1 else stacked[0]

    def sample(self, index: int) -> dict[str, Any]:
        video, label = self.items[index]
        _, clips = self.clip_frames(video)
        return {"inputs": self.read_clips(video, clips), "label": label}


class VideoClipBytes:
    """``video_clip_bytes``: a video stored in a WebDataset shard (kept as bytes by core's
    ``shards`` dataset) read into one training clip as :class:`VideoDataset` reads a file — the
    same ``clip`` sampling (drawn under the sample's seed), ``seek`` and ``decoder``: uint8
    (T, H, W, 3). Streamed Kinetics-style shards (``KEY.mp4`` + ``KEY.cls``)::

        dataset=dict(type="shards", shards="k400/{000000..000999}.tar", fields=dict(mp4="inputs"),
                     field_transforms=dict(inputs=dict(type="video_clip_bytes", clip=dict(
                         sampling="consecutive", num_frames=16, stride=4))))
    """

    def __init__(self, clip: dict[str, Any] | None = None, seek: bool = True, decoder: str = "pyav") -> None:
        self.sampler = ClipSampler(**(clip or dict(sampling="consecutive", num_frames=16, stride=4)))
        self.seek, self.decoder = seek, check_decoder(decoder)

    def __call__(self, member: Any) -> torch.Tensor:
        from maekit.data.shards import RawMember

        if not isinstance(member, RawMember):
            raise ValueError(f"video_clip_bytes reads a shard member kept as bytes, got a {type(member).__name__}: "
                             f"map the video's extension to this field in the shards dataset's fields")
        with member.as_file() as path:
            info = probe_video(path)
            try:
                clip = self.sampler.clips(info, True, 1)[0]
            except ClipTooShort as error:
                raise ValueError(f"{path}: {error}") from None
            return read_frames(path, clip, self.seek, self.decoder)


def _lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append((number, line.split()))
    if not rows:
        raise ValueError(f"{path}: {what} is empty")
    return rows


def _int(value: str, path: Path, number: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{path}, line {number}: {what} must be an integer, got {value!r}") from None


def _class_names(labels: Sequence[int]) -> list[str]:
    return [str(k) for k in range(max(labels) + 1)] if labels and max(labels) >= 0 else []


class VideoList(VideoDataset):
    """A list file of ``path label`` lines, one space, no header: VideoMAE's / MVD's / SlowFast's
    ``train.csv`` and MMAction2's ``*_list_videos.txt`` (paths relative to ``root``). A line
    without a label is unlabelled (−1), for pre-training lists."""

    modality = "video"

    def __init__(self, list_file: str | Path, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(**options)
        path = Path(list_file)
        base = Path(root) if root is not None else None
        items: list[tuple[Source, int]] = []
        for number, parts in _lines(path, "video list"):
            if len(parts) > 2:
                raise ValueError(f"{path}, line {number}: expected 'path label', got {' '.join(parts)!r} "
                                 f"(paths with spaces are not supported by this format)")
            label = _int(parts[1], path, number, "the label") if len(parts) == 2 else -1
            items.append(((base / parts[0]) if base else Path(parts[0]), label))
        self.classes = _class_names([label for _, label in items])
        self.set_items(items, str(path))


class RawframeList(VideoDataset):
    """MMAction2's rawframe list: ``frame_dir total_frames label`` lines, frames named
    ``img_00001.jpg`` (``template``, ``start_index``) inside ``root/frame_dir``; ``fps``: the rate
    they were extracted at (for ``window`` sampling)."""

    modality = "video"

    def __init__(self, list_file: str | Path, root: str | Path = ".", template: str = "img_{:05d}.jpg",
                 start_index: int = 1, fps: float = 30.0, **options: Any) -> None:
        super().__init__(**options)
        self.frame_template, self.frame_start_index, self.frame_rate = template, start_index, fps
        path = Path(list_file)
        items: list[tuple[Source, int]] = []
        for number, parts in _lines(path, "rawframe list"):
            if len(parts) != 3:
                raise ValueError(f"{path}, line {number}: expected 'frame_dir total_frames label', got {' '.join(parts)!r}")
            frames = _int(parts[1], path, number, "total_frames")
            items.append(((Path(root) / parts[0], frames), _int(parts[2], path, number, "the label")))
        self.classes = _class_names([label for _, label in items])
        self.set_items(items, str(path))


class KineticsCSV(VideoDataset):
    """Kinetics as its annotation CSV gives it (``label,youtube_id,time_start,time_end,split``)
    with clips named ``youtube_id_SSSSSS_EEEEEE.mp4`` (the crawler's naming), found under
    ``root/<label>/`` or directly in ``root``. Classes: the sorted label names (or ``classes``)."""

    modality = "video"

    def __init__(self, csv_file: str | Path, root: str | Path, classes: Sequence[str] | None = None,
                 extension: str = ".mp4", **options: Any) -> None:
        super().__init__(**options)
        path, root = Path(csv_file), Path(root)
        if not path.is_file():
            raise ValueError(f"{path}: Kinetics annotation CSV not found")
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        needed = {"label", "youtube_id", "time_start", "time_end"}
        if not rows or not needed <= set(rows[0]):
            raise ValueError(f"{path}: expected the columns label,youtube_id,time_start,time_end,split")
        self.classes = list(classes) if classes else sorted({row["label"] for row in rows})
        index = {name: i for i, name in enumerate(self.classes)}
        items: list[tuple[Source, int]] = []
        for number, row in enumerate(rows, start=2):
            if any(row.get(column) is None for column in needed):
                raise ValueError(f"{path}, line {number}: expected 5 columns label,youtube_id,time_start,time_end,split")
            if row["label"] not in index:
                raise ValueError(f"{path}, line {number}: label {row['label']!r} is not among the {len(index)} classes")
            name = (f"{row['youtube_id']}_{_int(row['time_start'].split('.')[0], path, number, 'time_start'):06d}_"
                    f"{_int(row['time_end'].split('.')[0], path, number, 'time_end'):06d}{extension}")
            nested = root / row["label"] / name
            items.append((nested if nested.is_file() else root / name, index[row["label"]]))
        self.set_items(items, str(path))


class SomethingSomethingV2(VideoDataset):
    """Something-Something v2 as distributed: numbered ``.webm`` files in ``video_dir`` (default
    ``root/20bn-something-something-v2``, else ``root``), ``labels.json`` ({template: id}) and
    ``train.json`` / ``validation.json`` ([{id, label, template, placeholders}]); a video's class is
    its template with the brackets removed (174 classes)."""

    modality = "video"

    def __init__(self, root: str | Path, split: str = "train", video_dir: str | Path | None = None,
                 **options: Any) -> None:
        super().__init__(**options)
        root = Path(root)
        if split not in ("train", "validation"):
            raise ValueError(f"ssv2 split must be 'train' or 'validation', got {split!r}")
        labels = self._json(root / "labels.json")
        entries = self._json(root / f"{split}.json")
        if not isinstance(labels, dict) or not isinstance(entries, list):
            raise ValueError(f"{root}: labels.json must map templates to ids and {split}.json list the videos")
        try:
            ids = {template: int(number) for template, number in labels.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{root / 'labels.json'}: class ids must be integers (as strings), e.g. "
                             f'{{"Holding something": "0"}}') from None
        self.classes = [name for name, _ in sorted(ids.items(), key=lambda item: item[1])]
        folder = Path(video_dir) if video_dir else (root / "20bn-something-something-v2")
        folder = folder if folder.is_dir() else root
        items: list[tuple[Source, int]] = []
        for entry in entries:
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                raise ValueError(f"{root / (split + '.json')}: every entry needs an id and a template, got {entry!r}")
            template = str(entry["template"]).replace("[", "").replace("]", "")
            if template not in ids:
                raise ValueError(f"{root / (split + '.json')}: video {entry.get('id')} has template {template!r}, "
                                 f"which labels.json does not list")
            items.append((folder / f"{entry['id']}.webm", ids[template]))
        self.set_items(items, str(root / f"{split}.json"))

    @staticmethod
    def _json(path: Path) -> Any:
        if not path.is_file():
            raise ValueError(f"{path}: not found (Something-Something v2 ships labels.json, train.json, validation.json)")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None


class UCF101(VideoDataset):
    """UCF101 with its split files (``ucfTrainTestlist``): ``classInd.txt`` ("1 ApplyEyeMakeup"),
    ``trainlist0N.txt`` ("ApplyEyeMakeup/v_….avi 1", labels 1-based) and ``testlist0N.txt``
    (paths only: the class is the folder); videos under ``root``."""

    modality = "video"

    def __init__(self, root: str | Path, split_dir: str | Path, split: int = 1, subset: str = "train",
                 **options: Any) -> None:
        super().__init__(**options)
        if subset not in ("train", "test") or split not in (1, 2, 3):
            raise ValueError(f"ucf101 takes split 1-3 and subset 'train' or 'test', got {split!r}, {subset!r}")
        root, split_dir = Path(root), Path(split_dir)
        class_file = split_dir / "classInd.txt"
        rows = _lines(class_file, "classInd.txt")
        for number, parts in rows:
            if len(parts) != 2:
                raise ValueError(f"{class_file}, line {number}: expected 'number ClassName', got {' '.join(parts)!r}")
        numbered = {_int(parts[0], class_file, n, "the class number"): parts[1] for n, parts in rows}
        self.classes = [numbered[k] for k in sorted(numbered)]
        index = {name: i for i, name in enumerate(self.classes)}
        list_file = split_dir / f"{subset}list0{split}.txt"
        items: list[tuple[Source, int]] = []
        for number, parts in _lines(list_file, "UCF101 split list"):
            name = parts[0].split("/")[0]
            if name not in index:
                raise ValueError(f"{list_file}, line {number}: class folder {name!r} is not in classInd.txt")
            items.append((root / parts[0], index[name]))
        self.set_items(items, str(list_file))


class HMDB51(VideoDataset):
    """HMDB51 with its split files (``testTrainMulti_7030_splits``): ``<class>_test_split<N>.txt``
    lines "name.avi 1|2|0" (1 train, 2 test, 0 unused); videos in ``root/<class>/name.avi``."""

    modality = "video"

    def __init__(self, root: str | Path, split_dir: str | Path, split: int = 1, subset: str = "train",
                 **options: Any) -> None:
        super().__init__(**options)
        if subset not in ("train", "test") or split not in (1, 2, 3):
            raise ValueError(f"hmdb51 takes split 1-3 and subset 'train' or 'test', got {split!r}, {subset!r}")
        root, split_dir = Path(root), Path(split_dir)
        files = sorted(split_dir.glob(f"*_test_split{split}.txt"))
        if not files:
            raise ValueError(f"{split_dir}: no *_test_split{split}.txt files (HMDB51's testTrainMulti_7030_splits)")
        suffix = f"_test_split{split}.txt"
        self.classes = sorted(f.name[: -len(suffix)] for f in files)
        wanted = "1" if subset == "train" else "2"
        items: list[tuple[Source, int]] = []
        for label, name in enumerate(self.classes):
            for number, parts in _lines(split_dir / f"{name}{suffix}", "HMDB51 split file"):
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(f"{split_dir / (name + suffix)}, line {number}: expected 'name.avi 0|1|2', "
                                     f"got {' '.join(parts)!r}")
                if parts[1] == wanted:
                    items.append((root / name / parts[0], label))
        self.set_items(items, str(split_dir))


class VideoFolder(VideoDataset):
    """Any folder of videos, searched recursively, for pre-training (label −1); with
    ``class_folders=True`` the first-level folders are the classes (sorted names)."""

    modality = "video"

    def __init__(self, root: str | Path, class_folders: bool = False, extensions: Sequence[str] = VIDEO_EXTENSIONS,
                 **options: Any) -> None:
        super().__init__(**options)
        items, self.classes = list_videos(root, class_folders, extensions)
        self.set_items(list(items), str(root))


def list_videos(root: str | Path, class_folders: bool, extensions: Sequence[str]) -> tuple[list[tuple[Path, int]], list[str]]:
    """The videos under ``root`` (searched recursively, sorted) with their labels, and the classes:
    with ``class_folders`` the first-level folders (sorted names), else none (labels −1)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    wanted = {e.lower() for e in extensions}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
    if not files:
        raise ValueError(f"{root}: no videos with extensions {', '.join(extensions)}")
    if not class_folders:
        return [(p, -1) for p in files], []
    files = [p for p in files if p.parent != root]
    classes = sorted({p.relative_to(root).parts[0] for p in files})
    if not classes:
        raise ValueError(f"{root}: class_folders=True but the videos are not in class folders")
    index = {name: i for i, name in enumerate(classes)}
    return [(p, index[p.relative_to(root).parts[0]]) for p in files], classes


# -- transforms: uint8 frames (T, H, W, 3) or (K, T, H, W, 3) → float clips (C, T, H, W) / (V, C, T, H, W)

def _as_float(frames: torch.Tensor) -> torch.Tensor:
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2).float().div(255)  # T, 3, H, W


def _resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _normalise(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1] → normalised (3, T, H, W)."""
    clip = (frames - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return clip.permute(1, 0, 2, 3).contiguous()


def _short_side(frames: torch.Tensor, short: int) -> torch.Tensor:
    height, width = frames.shape[-2:]
    scale = short / min(height, width)
    return _resize(frames, (max(short, round(height * scale)), max(short, round(width * scale))))


class _RepeatedTransform:
    """Applies :meth:`one` to every clip of a read; ``repeats`` R > 1 gives R augmented copies of
    each (VideoMAE's ``num_sample``, OmniMAE's 4 clips per decoded video): (R, C, T, H, W)."""

    repeats = 1

    def one(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() == 5:
            return torch.stack([self.one(clip) for clip in frames])
        if self.repeats > 1:
            return torch.stack([self.one(frames) for _ in range(self.repeats)])
        return self.one(frames)


class VideoMAEAugment(_RepeatedTransform):
    """VideoMAE's pre-training augmentation: ``GroupMultiScaleCrop`` — crop width and height each
    one of ``scales`` × the short side, at most ``max_distort`` steps apart, at one of 13 fixed
    positions (corners, centre, edge centres, quarter points) — resized to ``size`` for every
    frame alike; no flip by default; ImageNet normalisation."""

    def __init__(self, size: int = 224, scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66), max_distort: int = 1,
                 flip: bool = False, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 repeats: int = 1) -> None:
        self.size, self.scales, self.max_distort, self.flip = size, tuple(scales), max_distort, flip
        self.mean, self.std, self.repeats = tuple(mean), tuple(std), repeats

    def _draw(self, count: int) -> int:
        return int(torch.randint(count, (1,)).item())

    def one(self, frames: torch.Tensor) -> torch.Tensor:
        x = _as_float(frames)
        height, width = x.shape[-2:]
        base = min(height, width)
        # within 3 pixels of the output size the crop is the output size (the reference's snap)
        sizes = [self.size if abs(int(base * s) - self.size) < 3 else int(base * s) for s in self.scales]
        pairs = [(w, h) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= self.max_distort]
        crop_w, crop_h = pairs[self._draw(len(pairs))]
        step_w, step_h = (width - crop_w) // 4, (height - crop_h) // 4
        offsets = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
        ox, oy = offsets[self._draw(len(offsets))]
        left, top = ox * step_w, oy * step_h
        x = _resize(x[..., top:top + crop_h, left:left + crop_w], (self.size, self.size))
        if self.flip and self._draw(2):
            x = x.flip(-1)
        return _normalise(x, self.mean, self.std)


class VideoResizedCropAugment(_RepeatedTransform):
    """A random resized crop (``scale``, ``ratio`` of the area) shared by every frame, then
    ``size``², optional horizontal flip (off for SSv2, where left/right is the label), ImageNet
    normalisation; ``short_side`` first rescales (OmniMAE: 256, then the crop to 224)."""

    def __init__(self, size: int = 224, scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 flip: bool = True, short_side: int | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, repeats: int = 1) -> None:
        from torchvision.transforms import v2

        self.crop = v2.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio), antialias=True)
        self.flip, self.short_side = flip, short_side
        self.mean, self.std, self.repeats = tuple(mean), tuple(std), repeats

    def one(self, frames: torch.Tensor) -> torch.Tensor:
        x = _as_float(frames)
        if self.short_side:
            x = _short_side(x, self.short_side)
        x = self.crop(x).clamp(0, 1)  # one crop for the whole clip: the frames are a batch of one video
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return _normalise(x, self.mean, self.std)


class VideoEvalTransform(_RepeatedTransform):
    """Deterministic: short side to ``short_side`` (default ``size``), then ``crops`` crops of
    ``size``² along the longer side (1: the centre; 3: start, centre, end — VideoMAE's three
    spatial views). Several crops or clips give (views, C, T, H, W), clip-major."""

    def __init__(self, size: int = 224, short_side: int | None = None, crops: int = 1,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if crops not in (1, 3):
            raise ValueError(f"crops must be 1 or 3, got {crops!r}")
        self.size, self.short_side, self.crops = size, short_side or size, crops
        self.mean, self.std = tuple(mean), tuple(std)

    def views(self, frames: torch.Tensor) -> list[torch.Tensor]:
        x = _short_side(_as_float(frames), self.short_side)
        height, width = x.shape[-2:]
        size = self.size
        if self.crops == 1:
            starts = [((height - size) // 2, (width - size) // 2)]
        elif height >= width:  # crops along the longer side
            starts = [(int(k * (height - size) / 2), (width - size) // 2) for k in range(3)]
        else:
            starts = [((height - size) // 2, int(k * (width - size) / 2)) for k in range(3)]
        return [_normalise(x[..., top:top + size, left:left + size], self.mean, self.std) for top, left in starts]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        clips = frames if frames.dim() == 5 else frames.unsqueeze(0)
        views = [view for clip in clips for view in self.views(clip)]
        return views[0] if len(views) == 1 else torch.stack(views)

