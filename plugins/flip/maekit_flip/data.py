"""Image–caption pairs in the formats FLIP/CLIP users have, and the bundled demo pairs.

Every sample is ``{"inputs": C×H×W float in [0, 1], "text": token ids (context length,),
"label": int (−1 when none), "image_id": int}``; ``image_id`` groups the captions of one image
(retrieval counts a hit for any of them). Images keep their own size: the training transform
(``mae_augment``) or evaluation transform resizes them.

Bad input: a missing column/key, an unknown image id, a caption that is empty is an error naming
the file and the row; with ``on_error="skip"`` empty captions are dropped at load (counted in
``skipped_captions``) and unreadable images are replaced by the next readable pair (counted in
``skipped_images``, per process).
"""
from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from maekit.data.images import read_image
from maekit.data.shards import expand_shards
from maekit.data.skipping import check_on_error
from maekit_flip.tokenizer import resolve_tokenizer, tokenize

__all__ = ["CaptionPairs", "CsvCaptions", "CocoCaptions", "WebDatasetCaptions", "DigitsCaptions",
           "expand_shards", "DIGIT_NAMES", "DIGIT_TEMPLATES"]

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "tif", "tiff")


class CaptionPairs(Dataset):
    """Pairs ``(image source, caption, image_id, where)``; subclasses say how to read a source.
    ``where`` names the file (and row/member) for error messages."""

    def __init__(self, pairs: list[tuple[Any, str, int, str]], channels: int = 3, tokenizer: Any = "open_clip",
                 context_length: int = 77, on_error: str = "raise") -> None:
        self.channels, self.on_error, self.context_length = channels, check_on_error(on_error), context_length
        self.tokenizer = resolve_tokenizer(tokenizer, context_length)
        self.skipped_captions, self.skipped_images = 0, 0
        self.pairs = []
        for source, caption, image_id, where in pairs:
            if not isinstance(caption, str) or not caption.strip():
                if on_error == "raise":
                    raise ValueError(f"{where}: empty caption (give every image a caption, or on_error='skip')")
                self.skipped_captions += 1
                continue
            self.pairs.append((source, caption.strip(), image_id, where))
        if not self.pairs:
            raise ValueError(f"{pairs[0][3].split(':')[0] if pairs else 'dataset'}: no image-caption pairs")

    def read(self, source: Any, where: str) -> torch.Tensor:
        return read_image(source, self.channels)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def captions(self) -> list[str]:
        return [caption for _, caption, _, _ in self.pairs]

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self.pairs)):
            source, caption, image_id, where = self.pairs[(index + attempt) % len(self.pairs)]
            try:
                image = self.read(source, where)
            except ValueError:
                if self.on_error == "raise":
                    raise
                self.skipped_images += 1
                continue
            text = tokenize(self.tokenizer, [caption], self.context_length)[0]
            return {"inputs": image, "text": text, "label": -1, "image_id": image_id}
        raise ValueError(f"{self.pairs[0][3]}: no readable image left")


def _image_ids(keys: Sequence[Any]) -> list[int]:
    """A dense integer id per distinct image key, in order of first appearance."""
    ids: dict[Any, int] = {}
    return [ids.setdefault(key, len(ids)) for key in keys]


class CsvCaptions(CaptionPairs):
    """A CSV/TSV with a header, as open_clip's ``CsvDataset``: image path column ``img_key``
    ("filepath") and caption column ``caption_key`` ("title"). ``sep``: "\\t" for .tsv and other
    files, "," for .csv, unless given. Relative image paths are read against the table's folder
    (open_clip reads them against the working directory)."""

    modality = "image_text"

    def __init__(self, path: str | Path, img_key: str = "filepath", caption_key: str = "title", sep: str | None = None,
                 image_root: str | Path | None = None, **options: Any) -> None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"caption table {path} does not exist")
        sep = sep or ("," if path.suffix.lower() == ".csv" else "\t")
        root = Path(image_root) if image_root is not None else path.parent
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter=sep)
            columns = reader.fieldnames or []
            missing = [key for key in (img_key, caption_key) if key not in columns]
            if missing:
                raise ValueError(f"{path}: no column(s) {missing}; the header has {columns} (separator {sep!r}; "
                                 f"set img_key/caption_key/sep)")
            rows = list(reader)
        files = [row[img_key] or "" for row in rows]
        pairs = [(root / file, row[caption_key], image_id, f"{path}:{line}")
                 for line, (file, row, image_id) in enumerate(zip(files, rows, _image_ids(files)), start=2)]
        for image, _, _, where in pairs:
            if image == root:
                raise ValueError(f"{where}: empty image path")
        super().__init__(pairs, **options)


class CocoCaptions(CaptionPairs):
    """COCO-captions JSON (``captions_train2017.json``): ``images`` [{id, file_name}] and
    ``annotations`` [{image_id, caption}], one pair per caption; images under ``image_root``
    (default: the JSON's folder)."""

    modality = "image_text"

    def __init__(self, annotations: str | Path, image_root: str | Path | None = None, **options: Any) -> None:
        annotations = Path(annotations)
        try:
            content = json.loads(annotations.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{annotations}: cannot read COCO captions JSON ({error})") from None
        if not isinstance(content, dict) or not isinstance(content.get("images"), list) \
                or not isinstance(content.get("annotations"), list):
            raise ValueError(f"{annotations}: expected a COCO captions JSON object with 'images' and 'annotations' lists")
        root = Path(image_root) if image_root is not None else annotations.parent
        files: dict[Any, str] = {}
        for number, image in enumerate(content["images"]):
            if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
                raise ValueError(f"{annotations}: images[{number}] needs 'id' and 'file_name', got {image!r}")
            files[image["id"]] = image["file_name"]
        order = {key: position for position, key in enumerate(files)}
        pairs = []
        for number, note in enumerate(content["annotations"]):
            where = f"{annotations}:annotations[{number}]"
            if not isinstance(note, dict) or "image_id" not in note or "caption" not in note:
                raise ValueError(f"{where} needs 'image_id' and 'caption', got {note!r}")
            if note["image_id"] not in files:
                raise ValueError(f"{where}: image_id {note['image_id']!r} is not in 'images'")
            pairs.append((root / files[note["image_id"]], note["caption"], order[note["image_id"]], where))
        super().__init__(pairs, **options)


class WebDatasetCaptions(CaptionPairs):
    """WebDataset tar shards of (image, txt) samples: members grouped by key (the path up to the
    first dot of the file name, WebDataset's rule), image extension ``jpg``/``png``/``webp``/…,
    caption in ``txt``. Shards are indexed once (member offsets); items are read by seeking, so
    loader workers need no open tar handles. A sample missing its image or caption is an error
    (or skipped and counted with ``on_error="skip"``)."""

    modality = "image_text"

    def __init__(self, shards: str | Sequence[str], image_key: str | None = None, text_key: str = "txt",
                 **options: Any) -> None:
        pairs: list[tuple[Any, str, int, str]] = []
        incomplete = []
        for shard in expand_shards(shards):
            samples: dict[str, dict[str, Any]] = {}
            try:
                with tarfile.open(shard, "r:") as archive:
                    for member in archive:
                        if not member.isfile():
                            continue
                        folder, _, name = member.name.rpartition("/")
                        stem, dot, extension = name.partition(".")
                        if not dot or stem.startswith("."):
                            continue
                        key = f"{folder}/{stem}" if folder else stem
                        entry = samples.setdefault(key, {})
                        extension = extension.lower()
                        if extension == text_key:
                            entry["text"] = archive.extractfile(member).read().decode("utf-8", errors="replace")
                        elif (extension == image_key) if image_key else extension in IMAGE_SUFFIXES:
                            entry["image"] = (shard, member.offset_data, member.size, member.name)
            except (tarfile.TarError, OSError) as error:
                raise ValueError(f"{shard}: not a readable tar shard ({error})") from None
            for key, entry in samples.items():
                where = f"{shard}:{key}"
                if "image" not in entry or "text" not in entry:
                    incomplete.append(f"{where} (has {'image' if 'image' in entry else 'text'} only)")
                    continue
                pairs.append((entry["image"], entry["text"], len(pairs), where))
        if incomplete and options.get("on_error", "raise") == "raise":
            raise ValueError(f"webdataset samples without both an image and a '{text_key}' caption: "
                             f"{incomplete[:5]}{' …' if len(incomplete) > 5 else ''}")
        super().__init__(pairs, **options)
        self.skipped_captions += len(incomplete)

    def read(self, source: Any, where: str) -> torch.Tensor:
        shard, offset, size, member = source
        with open(shard, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
        try:
            return read_image(io.BytesIO(data), self.channels)
        except ValueError as error:
            raise ValueError(f"{shard}:{member}: cannot read image ({str(error).split('(', 1)[-1].rstrip(')')})") from None


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = ("a photo of the number {}.", "a handwritten {}.", "the digit {}.", "a drawing of a {}.",
                   "a scan of the number {}.")


class DigitsCaptions(Dataset):
    """The demo pairs: scikit-learn's digits (real scans, core's ``digits`` split) with templated
    captions, "a photo of the number seven." — template ``index % len(templates)``."""

    modality = "image_text"

    def __init__(self, split: str = "train", size: int = 32, channels: int = 3,
                 templates: Sequence[str] = DIGIT_TEMPLATES, tokenizer: Any = "open_clip",
                 context_length: int = 77) -> None:
        from maekit.data.bundled import DigitsDataset

        self.digits = DigitsDataset(split=split, size=size, channels=channels)
        self.classes = list(DIGIT_NAMES)
        self.templates = list(templates)
        tokenizer_fn: Callable = resolve_tokenizer(tokenizer, context_length)
        captions = [template.format(name) for name in DIGIT_NAMES for template in self.templates]
        self.token_table = tokenize(tokenizer_fn, captions, context_length).view(10, len(self.templates), -1)

    def __len__(self) -> int:
        return len(self.digits)

    def caption(self, index: int) -> str:
        return self.templates[index % len(self.templates)].format(DIGIT_NAMES[int(self.digits.labels[index])])

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.digits[index]
        text = self.token_table[sample["label"], index % len(self.templates)]
        return {"inputs": sample["inputs"], "text": text, "label": sample["label"], "image_id": index}
