"""Video–caption datasets in the formats users have.

Every dataset gives ``{"inputs": uint8 frames (T, H, W, 3), "caption": str, "label": video index}``
and lists every caption of every video in :attr:`CaptionedVideos.captions` (retrieval reads them
all). A video with several captions serves one per read: drawn from torch's generator in training
(maekit's trainer seeds it per sample position, so resume stays exact), the first otherwise.
Clip sampling, decoding and the ``on_error`` policy are maekit-video's (:class:`~maekit_video.data.VideoDataset`).

- :class:`VideoCaptions`: any CSV (header row naming a path and a caption column), JSON lines
  (``{"video": ..., "caption": ... or [...]}``) or JSON (SimVTP's ``{"/path/clip.mp4": "caption"}``,
  or a list of such objects); rows naming the same video add captions to it.
- :class:`WebVidCSV`: WebVid-2M/10M's ``results_2M_train.csv`` (videoid, contentUrl, duration,
  page_dir, name), clips at ``<video_dir>/<page_dir>/<videoid>.mp4``.
- :class:`MSRVTT`: CLIP4Clip's layout: ``MSRVTT_data.json`` (sentences), ``MSRVTT_train.9k.csv``
  (the 9k training split) and ``MSRVTT_JSFUSION_test.csv`` (the 1k-A test split, one caption per video).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from maekit_video.data import VideoDataset

__all__ = ["CaptionedVideos", "VideoCaptions", "WebVidCSV", "MSRVTT", "PATH_COLUMNS", "CAPTION_COLUMNS"]

#: the column (or JSON key) names :class:`VideoCaptions` recognises, first match wins
PATH_COLUMNS = ("video", "path", "video_path", "filename", "file", "video_id")
CAPTION_COLUMNS = ("caption", "text", "sentence", "name", "captions")


class CaptionedVideos(VideoDataset):
    """What every caption dataset shares: videos, their captions, and one caption per read.
    ``test_clips`` K (evaluation only) reads K clips spread over the video, (K, T, H, W, 3): with an
    evaluation transform of 3 crops, SimVTP's 3 × 3 test views."""

    modality = "video"

    def __init__(self, clip: dict[str, Any] | None = None, train: bool = True, test_clips: int = 1,
                 on_error: str = "raise", seek: bool = True, decoder: str = "pyav") -> None:
        super().__init__(clip=clip, train=train, test_clips=test_clips, on_error=on_error, seek=seek, decoder=decoder)
        self.captions: list[list[str]] = []

    def set_videos(self, videos: dict[Path, list[str]], source: str) -> None:
        """Keep the listed videos that exist (core's ``on_error`` policy names or skips the others)."""
        paths = list(videos)
        self.set_items([(path, number) for number, path in enumerate(paths)], source)
        self.captions = [videos[paths[number]] for _, number in self.items]
        self.items = [(path, index) for index, (path, _) in enumerate(self.items)]

    @property
    def num_captions(self) -> int:
        return sum(len(captions) for captions in self.captions)

    def sample(self, index: int) -> dict[str, Any]:
        read = super().sample(index)
        captions = self.captions[index]
        pick = int(torch.randint(len(captions), ())) if self.train and len(captions) > 1 else 0
        return {"inputs": read["inputs"], "caption": captions[pick], "label": index}


def _caption(value: Any, where: str) -> list[str]:
    """One caption or a list of them, each a non-empty string."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError(f"{where}: expected a non-empty caption (or a list of them), got {value!r}")
    return [v.strip() for v in values]


def _column(names: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, where: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"{where}: no {what} column {wanted!r} (columns: {', '.join(names)})")
        return wanted
    for name in candidates:
        if name in names:
            return name
    raise ValueError(f"{where}: no {what} column; expected one of {', '.join(candidates)} (columns: {', '.join(names)}), "
                     f"or name it with {what}_column=")


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not path.is_file():
        raise ValueError(f"{path}: caption file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        names = list(reader.fieldnames or [])
        rows = [(reader.line_num, row) for row in reader]
    if not names or not rows:
        raise ValueError(f"{path}: empty (expected a header row and one row per caption)")
    return names, rows


class VideoCaptions(CaptionedVideos):
    """Videos and captions from one file (module docstring): ``.csv``, ``.jsonl`` or ``.json``.
    Paths are relative to ``root`` (default: the file's folder). ``path_column`` /
    ``caption_column`` name the columns (keys) when they are none of :data:`PATH_COLUMNS` /
    :data:`CAPTION_COLUMNS`."""

    def __init__(self, file: str | Path, root: str | Path | None = None, path_column: str | None = None,
                 caption_column: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        path = Path(file)
        base = Path(root) if root is not None else path.parent
        videos: dict[Path, list[str]] = {}
        for where, video, captions in self._records(path, path_column, caption_column):
            if not isinstance(video, str) or not video.strip():
                raise ValueError(f"{where}: expected a video path, got {video!r}")
            videos.setdefault(base / video.strip(), []).extend(_caption(captions, where))
        self.set_videos(videos, str(path))

    @staticmethod
    def _records(path: Path, path_column: str | None, caption_column: str | None) -> Iterable[tuple[str, Any, Any]]:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            names, rows = _csv_rows(path)
            video_key = _column(names, path_column, PATH_COLUMNS, "path", str(path))
            caption_key = _column(names, caption_column, CAPTION_COLUMNS, "caption", str(path))
            return [(f"{path}, row {line}", row[video_key], row[caption_key]) for line, row in rows]
        if suffix not in (".json", ".jsonl"):
            raise ValueError(f"{path}: caption files are .csv, .jsonl or .json, got {suffix or 'no extension'!r}")
        if not path.is_file():
            raise ValueError(f"{path}: caption file not found")
        text = path.read_text(encoding="utf-8")
        try:
            if suffix == ".jsonl":
                objects = [(f"{path}, line {n}", json.loads(line)) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            else:
                loaded = json.loads(text)
                if isinstance(loaded, dict):  # SimVTP's annotation: {"/path/clip.mp4": "caption", ...}
                    return [(f"{path}, entry {video!r}", video, caption) for video, caption in loaded.items()]
                if not isinstance(loaded, list):
                    raise ValueError(f"{path}: expected an object {{path: caption}} or a list of objects")
                objects = [(f"{path}, item {n}", item) for n, item in enumerate(loaded)]
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not objects:
            raise ValueError(f"{path}: no caption in the file")
        records = []
        for where, item in objects:
            if not isinstance(item, dict):
                raise ValueError(f"{where}: expected an object with a path and a caption, got {item!r}")
            names = list(item)
            records.append((where, item[_column(names, path_column, PATH_COLUMNS, "path", where)],
                            item[_column(names, caption_column, CAPTION_COLUMNS, "caption", where)]))
        return records


class WebVidCSV(CaptionedVideos):
    """WebVid-2M / 10M: ``results_2M_train.csv`` / ``results_2M_val.csv`` with columns videoid,
    contentUrl, duration (ISO 8601), page_dir, name (= the caption); clips as downloaded by the
    dataset's scripts at ``<video_dir>/<template>`` (default ``{page_dir}/{videoid}.mp4``)."""

    REQUIRED = ("videoid", "page_dir", "name")

    def __init__(self, csv_file: str | Path, video_dir: str | Path, template: str = "{page_dir}/{videoid}.mp4",
                 **options: Any) -> None:
        super().__init__(**options)
        path = Path(csv_file)
        names, rows = _csv_rows(path)
        missing = [name for name in self.REQUIRED if name not in names]
        if missing:
            raise ValueError(f"{path}: not a WebVid results CSV: no column {', '.join(missing)} "
                             f"(expected videoid, contentUrl, duration, page_dir, name)")
        videos: dict[Path, list[str]] = {}
        for line, row in rows:
            where = f"{path}, row {line}"
            if not row["videoid"] or not row["page_dir"]:
                raise ValueError(f"{where}: empty videoid or page_dir")
            try:
                relative = template.format(**row)
            except KeyError as error:
                raise ValueError(f"template {template!r} names column {error}, which {path} does not have") from None
            videos.setdefault(Path(video_dir) / relative, []).extend(_caption(row["name"], where))
        self.set_videos(videos, str(path))


class MSRVTT(CaptionedVideos):
    """MSR-VTT in CLIP4Clip's layout under ``root``: ``MSRVTT_data.json`` (``{"sentences":
    [{"video_id", "caption"}, ...]}``, 20 captions per video), ``MSRVTT_train.9k.csv`` (column
    video_id) and ``MSRVTT_JSFUSION_test.csv`` (key, vid_key, video_id, sentence). ``split``:
    ``"train_9k"`` (every caption of the 9,000 training videos), ``"test_1k_a"`` (the 1,000 test
    videos with the one caption each the split names), ``"all"`` (every video of the JSON).
    Clips at ``<video_dir>/<video_id>.mp4`` (default ``root/videos``)."""

    SPLITS = ("train_9k", "test_1k_a", "all")

    def __init__(self, root: str | Path, split: str = "train_9k", video_dir: str | Path | None = None,
                 data_json: str = "MSRVTT_data.json", train_csv: str = "MSRVTT_train.9k.csv",
                 test_csv: str = "MSRVTT_JSFUSION_test.csv", extension: str = ".mp4", **options: Any) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"MSR-VTT split must be one of {', '.join(self.SPLITS)}, got {split!r}")
        options.setdefault("train", split == "train_9k")
        super().__init__(**options)
        root = Path(root)
        folder = Path(video_dir) if video_dir is not None else root / "videos"
        if split == "test_1k_a":
            captions = self._test_captions(root / test_csv)
        else:
            captions = self._sentences(root / data_json)
            if split == "train_9k":
                wanted = self._video_ids(root / train_csv)
                absent = [v for v in wanted if v not in captions]
                if absent:
                    raise ValueError(f"{root / train_csv}: video {absent[0]} has no caption in {root / data_json} "
                                     f"({len(absent)} such videos)")
                captions = {video: captions[video] for video in wanted}
        self.set_videos({folder / f"{video}{extension}": texts for video, texts in captions.items()}, str(root))

    @staticmethod
    def _sentences(path: Path) -> dict[str, list[str]]:
        if not path.is_file():
            raise ValueError(f"{path}: MSR-VTT annotation not found (CLIP4Clip's MSRVTT_data.json)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            sentences = data["sentences"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}: expected JSON with a 'sentences' list of {{video_id, caption}}") from None
        captions: dict[str, list[str]] = {}
        for number, item in enumerate(sentences):
            if not isinstance(item, dict) or "video_id" not in item or "caption" not in item:
                raise ValueError(f"{path}, sentence {number}: expected {{video_id, caption}}, got {item!r}")
            captions.setdefault(str(item["video_id"]), []).extend(_caption(item["caption"], f"{path}, sentence {number}"))
        return captions

    @staticmethod
    def _video_ids(path: Path) -> list[str]:
        names, rows = _csv_rows(path)
        if "video_id" not in names:
            raise ValueError(f"{path}: no video_id column (columns: {', '.join(names)})")
        return [row["video_id"] for _, row in rows]

    @staticmethod
    def _test_captions(path: Path) -> dict[str, list[str]]:
        names, rows = _csv_rows(path)
        missing = [name for name in ("video_id", "sentence") if name not in names]
        if missing:
            raise ValueError(f"{path}: not the JSFusion 1k-A test list: no column {', '.join(missing)} "
                             f"(expected key, vid_key, video_id, sentence)")
        captions: dict[str, list[str]] = {}
        for line, row in rows:
            captions.setdefault(row["video_id"], []).extend(_caption(row["sentence"], f"{path}, row {line}"))
        return captions
