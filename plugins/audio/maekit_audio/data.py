"""Audio datasets in the on-disk layouts of the field, and the training transforms of Audio-MAE.

Every dataset gives ``{"inputs": (1, samples) waveform at sample_rate, "label": ...}``: an int for
single-label sets (ESC-50, Speech Commands, VGGSound, class folders), a multi-hot float vector for
AudioSet (kept as class indices, made dense when read), −1 when unlabelled. The filterbank is computed by the transform (``audio_fbank`` for
evaluation, ``audio_mae_augment`` for training), so its random gain and SpecAugment are seeded per
sample by maekit's training view and resume stays exact.

Files listed but absent are found when the dataset is built; unreadable, empty and too-short files
when they are read. ``on_error="raise"`` (default) names the file; ``"skip"`` leaves missing files
out, serves the next readable file in place of a broken one, and lists each in ``skipped_files``.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from maekit.data.skipping import check_on_error, first_readable, without_missing
from maekit_audio.frontend import AUDIO_EXTENSIONS, FbankFrontEnd, load_waveform

__all__ = ["AudioDataset", "AudioFolder", "ESC50", "SpeechCommands", "AudioSetSegments", "AudioSetJSON", "VGGSound",
           "AudioMAEAugment", "read_class_labels"]

# An int (single-label, −1 when unlabelled) or, for multi-label sets, the tuple of class indices
# (AudioSet's 2 M clips as dense 527-wide vectors would take 4 GB per process)
Label = int | tuple[int, ...]


class AudioDataset(Dataset):
    """What every audio dataset shares: a list of (file, label), reading with the front end's rules
    (``sample_rate``, ``mono``), and the ``on_error`` policy."""

    def __init__(self, sample_rate: int = 16000, mono: str = "first", on_error: str = "raise") -> None:
        if mono not in ("first", "mean"):
            raise ValueError(f"mono must be 'first' (the reference: channel 0) or 'mean', got {mono!r}")
        self.sample_rate, self.mono, self.on_error = sample_rate, mono, check_on_error(on_error)
        self.items: list[tuple[Path, Label]] = []
        self.classes: list[str] = []
        self.skipped_files: dict[Path, str] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def set_items(self, items: list[tuple[Path, Label]], source: str) -> None:
        """Keep the listed files that exist; a missing one is an error naming it (and how many more
        are missing), or with ``on_error="skip"`` is left out and listed in ``skipped_files``."""
        self.items = without_missing(items, lambda item: item[0], lambda item: item[0].is_file(), self.on_error,
                                     self.skipped_files, source)
        if not self.items:
            raise ValueError(f"{source}: no audio file to read")

    def __len__(self) -> int:
        return len(self.items)

    def label_tensor(self, indices: tuple[int, ...]) -> torch.Tensor:
        """The multi-hot label (num_classes,) of a multi-label clip."""
        label = torch.zeros(self.num_classes)
        label[list(indices)] = 1.0
        return label

    def sample_weights(self) -> torch.Tensor:
        """Label-balancing weights for ``data.sampler="balanced"``: AST / Audio-MAE's rule for
        multi-label sets (each class weighs 1000 / (its count + 0.01), a clip the sum over its labels),
        1 / (class count) for single-label ones."""
        labels = [label for _, label in self.items]
        if isinstance(labels[0], tuple):
            flat = torch.tensor([k for label in labels for k in label], dtype=torch.long)
            class_weight = 1000.0 / (torch.bincount(flat, minlength=self.num_classes).double() + 0.01)
            return torch.stack([class_weight[list(label)].sum() for label in labels])
        classes = torch.as_tensor(labels)
        if (classes < 0).any():
            raise ValueError("balanced sampling needs labels; this dataset has unlabelled samples (-1)")
        return 1.0 / torch.bincount(classes).double()[classes]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = first_readable(index, len(self.items), self.sample, lambda i: self.items[i][0], self.on_error,
                                self.skipped_files, "audio file")
        if sample is None:
            raise ValueError("no readable audio file left")
        return sample

    def sample(self, index: int) -> dict[str, Any]:
        path, label = self.items[index]
        waveform = load_waveform(path, self.sample_rate, self.mono)
        return {"inputs": waveform, "label": self.label_tensor(label) if isinstance(label, tuple) else label}


def _audio_files(root: Path, extensions: Sequence[str]) -> list[Path]:
    wanted = {extension.lower() for extension in extensions}
    return sorted(path for path in root.rglob("*") if path.is_file() and path.suffix.lower() in wanted)


class AudioFolder(AudioDataset):
    """Any folder of audio (or video) files, searched recursively, for pre-training (label −1); with
    ``class_folders=True`` the first-level folders are the classes (sorted names)."""

    modality = "audio"

    def __init__(self, root: str | Path, class_folders: bool = False, extensions: Sequence[str] = AUDIO_EXTENSIONS,
                 **options: Any) -> None:
        super().__init__(**options)
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder")
        files = _audio_files(root, extensions)
        if not files:
            raise ValueError(f"{root}: no audio files with extensions {', '.join(extensions)}")
        if class_folders:
            self.classes = sorted({path.relative_to(root).parts[0] for path in files if path.parent != root})
            if not self.classes:
                raise ValueError(f"{root}: class_folders=True but the audio files are not in class folders")
            index = {name: i for i, name in enumerate(self.classes)}
            items: list[tuple[Path, Label]] = [(path, index[path.relative_to(root).parts[0]])
                                               for path in files if path.parent != root]
        else:
            items = [(path, -1) for path in files]
        self.set_items(items, str(root))


def _read_csv_rows(path: Path, what: str) -> list[list[str]]:
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found")
    with path.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.reader(handle, skipinitialspace=True) if row and not row[0].startswith("#")]


class ESC50(AudioDataset):
    """ESC-50 as distributed: ``meta/esc50.csv`` (filename, fold, target, category, esc10, src_file,
    take) and ``audio/``; ``folds`` picks the rows (the reference's 5-fold protocol trains on four
    folds and tests on the fifth); ``esc10=True`` keeps the ESC-10 subset (labels renumbered)."""

    modality = "audio"

    COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]

    def __init__(self, root: str | Path, folds: Sequence[int] = (1, 2, 3, 4, 5), esc10: bool = False,
                 meta: str = "meta/esc50.csv", audio_dir: str = "audio", **options: Any) -> None:
        super().__init__(**options)
        root = Path(root)
        csv_path = root / meta
        if isinstance(folds, int) or not all(isinstance(fold, int) for fold in folds):
            raise ValueError(f"esc50 folds must be a list of fold numbers (e.g. (1, 2, 3, 4) or (5,)), got {folds!r}")
        rows = _read_csv_rows(csv_path, "ESC-50 metadata (meta/esc50.csv)")
        if not rows or rows[0][:3] != self.COLUMNS[:3]:
            raise ValueError(f"{csv_path}: expected the header {','.join(self.COLUMNS)}, got "
                             f"{','.join(rows[0]) if rows else 'an empty file'}")
        header = rows[0]
        records = [dict(zip(header, row)) for row in rows[1:]]
        for number, record in enumerate(records, start=2):
            try:
                record["fold"], record["target"] = int(record["fold"]), int(record["target"])
            except (KeyError, ValueError):
                raise ValueError(f"{csv_path}, line {number}: fold and target must be integers, "
                                 f"got {rows[number - 1]}") from None
        unknown = sorted(set(folds) - {record["fold"] for record in records})
        if unknown:
            raise ValueError(f"{csv_path}: no rows in folds {unknown}")
        if esc10:
            records = [record for record in records if record.get("esc10", "").lower() == "true"]
        categories = {record["target"]: record["category"] for record in records}
        targets = sorted(categories)
        self.classes = [categories[target] for target in targets]
        renumber = {target: i for i, target in enumerate(targets)}
        self.set_items([(root / audio_dir / record["filename"], renumber[record["target"]])
                        for record in records if record["fold"] in set(folds)], str(csv_path))


class SpeechCommands(AudioDataset):
    """Google Speech Commands (v1/v2) as distributed: ``<word>/<speaker>_nohash_<n>.wav``,
    ``validation_list.txt`` and ``testing_list.txt``; ``split="train"`` is every file in neither
    list. Classes are the word folders (sorted; ``_background_noise_`` excluded) or ``words``."""

    modality = "audio"

    def __init__(self, root: str | Path, split: str = "train", words: Sequence[str] | None = None,
                 **options: Any) -> None:
        super().__init__(**options)
        root = Path(root)
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder")
        lists = {}
        for name, file in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
            path = root / file
            if not path.is_file():
                raise ValueError(f"{path}: not found (Speech Commands ships validation_list.txt and testing_list.txt)")
            lists[name] = {line.strip() for line in path.read_text().splitlines() if line.strip()}
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        self.classes = list(words) if words is not None else folders
        unknown = sorted(set(self.classes) - set(folders))
        if unknown:
            raise ValueError(f"{root}: word folders {unknown} not found; present: {folders}")
        index = {word: i for i, word in enumerate(self.classes)}
        if split == "train":
            held_out = lists["validation"] | lists["test"]
            relative = sorted(f"{word}/{p.name}" for word in self.classes for p in (root / word).glob("*.wav"))
            relative = [name for name in relative if name not in held_out]
        else:
            relative = sorted(name for name in lists[split] if name.split("/")[0] in index)
        self.set_items([(root / name, index[name.split("/")[0]]) for name in relative], f"{root} ({split})")


def read_class_labels(path: str | Path) -> dict[str, int]:
    """AudioSet's ``class_labels_indices.csv`` (index,mid,display_name): {mid: index}."""
    path = Path(path)
    rows = _read_csv_rows(path, "AudioSet class list (class_labels_indices.csv)")
    if not rows or [column.strip() for column in rows[0][:2]] != ["index", "mid"]:
        raise ValueError(f"{path}: expected the header index,mid,display_name, got "
                         f"{','.join(rows[0]) if rows else 'an empty file'}")
    try:
        return {row[1]: int(row[0]) for row in rows[1:]}
    except (IndexError, ValueError):
        raise ValueError(f"{path}: every row must be index,mid,display_name with an integer index") from None


def _class_indices(mids: str, index: dict[str, int], where: str) -> tuple[int, ...]:
    found = []
    for mid in (part.strip() for part in mids.split(",")):
        if mid not in index:
            raise ValueError(f"{where}: label {mid!r} is not in the class list")
        found.append(index[mid])
    return tuple(sorted(set(found)))


def _find_audio(folder: Path, stem: str, extensions: Sequence[str]) -> Path:
    """``folder/stem.<ext>`` for the first extension present (the first one when none is)."""
    for extension in extensions:
        candidate = folder / f"{stem}{extension}"
        if candidate.is_file():
            return candidate
    return folder / f"{stem}{extensions[0]}"


class AudioSetSegments(AudioDataset):
    """AudioSet segment lists (``balanced_train_segments.csv`` ...: comment lines, then ``YTID,
    start_seconds, end_seconds, "mid1,mid2"``) with ``class_labels_indices.csv``; multi-label (a
    527-way multi-hot vector). Files are found in ``audio_dir`` as ``filename`` formatted with
    ``ytid``, ``start`` and ``end`` (the CSV's text), with any of ``extensions``."""

    modality = "audio"

    def __init__(self, segments: str | Path, class_labels: str | Path, audio_dir: str | Path,
                 filename: str = "{ytid}", extensions: Sequence[str] = AUDIO_EXTENSIONS, **options: Any) -> None:
        super().__init__(**options)
        segments, audio_dir = Path(segments), Path(audio_dir)
        index = read_class_labels(class_labels)
        self.classes = sorted(index, key=index.__getitem__)
        items: list[tuple[Path, Label]] = []
        for number, row in enumerate(_read_csv_rows(segments, "AudioSet segment list"), start=1):
            if len(row) < 4:
                raise ValueError(f"{segments}: row {number} must be YTID, start_seconds, end_seconds, \"labels\"; got {row}")
            ytid, start, end, mids = row[0], row[1], row[2], ",".join(row[3:])
            stem = filename.format(ytid=ytid, start=start, end=end)
            items.append((_find_audio(audio_dir, stem, extensions), _class_indices(mids, index, f"{segments} row {number}")))
        self.set_items(items, str(segments))


class AudioSetJSON(AudioDataset):
    """The AST / Audio-MAE datafile: ``{"data": [{"wav": path, "labels": "mid1,mid2"}, ...]}`` with
    ``class_labels_indices.csv``; relative paths are read from the JSON file's folder."""

    modality = "audio"

    def __init__(self, datafile: str | Path, class_labels: str | Path, **options: Any) -> None:
        super().__init__(**options)
        datafile = Path(datafile)
        if not datafile.is_file():
            raise ValueError(f"{datafile}: datafile not found")
        try:
            entries = json.loads(datafile.read_text())["data"]
            pairs = [(entry["wav"], entry["labels"]) for entry in entries]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{datafile}: expected {{\"data\": [{{\"wav\": path, \"labels\": \"mid1,mid2\"}}]}} ({error})") from None
        index = read_class_labels(class_labels)
        self.classes = sorted(index, key=index.__getitem__)
        self.set_items([(datafile.parent / wav, _class_indices(mids, index, f"{datafile} entry {i}"))
                        for i, (wav, mids) in enumerate(pairs)], str(datafile))


class VGGSound(AudioDataset):
    """VGGSound's ``vggsound.csv`` (no header: YouTube id, start second, label text, train|test);
    files ``filename`` formatted with ``ytid`` and ``start`` (an int) in ``audio_dir``. Classes are
    the sorted label texts of the whole CSV (309 in the release), so both splits number them alike."""

    modality = "audio"

    def __init__(self, csv_file: str | Path, audio_dir: str | Path, split: str = "train",
                 filename: str = "{ytid}_{start:06d}", extensions: Sequence[str] = AUDIO_EXTENSIONS,
                 **options: Any) -> None:
        super().__init__(**options)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        csv_file, audio_dir = Path(csv_file), Path(audio_dir)
        rows = _read_csv_rows(csv_file, "VGGSound list (vggsound.csv)")
        if not rows:
            raise ValueError(f"{csv_file}: empty; expected rows youtube_id,start_second,label,train|test")
        for number, row in enumerate(rows, start=1):
            if len(row) != 4 or row[3] not in ("train", "test") or not row[1].lstrip("-").isdigit():
                raise ValueError(f"{csv_file}: row {number} must be youtube_id,start_second,label,train|test; got {row}")
        self.classes = sorted({row[2] for row in rows})
        index = {name: i for i, name in enumerate(self.classes)}
        self.set_items([(_find_audio(audio_dir, filename.format(ytid=row[0], start=int(row[1])), extensions),
                         index[row[2]]) for row in rows if row[3] == split], str(csv_file))


class AudioMAEAugment(FbankFrontEnd):
    """Audio-MAE's training view of a waveform: a random gain Beta(10, 10) + 0.5 (the reference's
    ``roll_mag_aug``, whose roll is a no-op), the filterbank, then for fine-tuning SpecAugment —
    one frequency mask up to ``freqm`` bins and one time mask up to ``timem`` frames, filled with 0
    in the log-mel domain before normalising (torchaudio's ``FrequencyMasking``/``TimeMasking``)."""

    def __init__(self, gain: bool = True, freqm: int = 0, timem: int = 0, **front_end: Any) -> None:
        super().__init__(**front_end)
        if freqm < 0 or timem < 0:
            raise ValueError(f"freqm and timem must be >= 0, got {freqm}, {timem}")
        self.gain, self.freqm, self.timem = gain, freqm, timem

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        from torchaudio.functional import mask_along_axis

        if self.gain:
            waveform = waveform * (torch.distributions.Beta(10.0, 10.0).sample() + 0.5)
        fbank = self.log_mel(waveform).T.unsqueeze(0)  # (1, bins, frames) as torchaudio's maskers expect
        if self.freqm:
            fbank = mask_along_axis(fbank, self.freqm, 0.0, axis=1)
        if self.timem:
            fbank = mask_along_axis(fbank, self.timem, 0.0, axis=2)
        return self.normalise(fbank[0].T).unsqueeze(0)
