"""WebDataset tar shards: reading them as a stream, and writing any registered dataset into them.

The on-disk format is WebDataset's: a POSIX tar whose members ``KEY.FIELD.EXT`` (or ``KEY.EXT``)
are grouped into one sample per ``KEY`` (the member's path up to the first dot of its file name),
a sample's members consecutive. What :func:`write_shards` writes, and how :class:`ShardDataset`
decodes a member by its extension:

- ``.npy``: a tensor (numpy's format, read with ``allow_pickle=False``: no code is ever executed)
- ``.cls``: an integer label (WebDataset's convention), field ``label``
- ``.txt``: a UTF-8 string; ``.json``: a JSON value
- ``.jpg .jpeg .png .webp ...``: an image as a C×H×W float tensor in [0, 1] (core's image rule),
  the way image–text collections (LAION's img2dataset) are stored

A member ``KEY.EXT`` without a field name takes a field by its extension: an image or ``.npy`` is
``inputs``, ``.cls`` is ``label``, ``.txt`` is ``text``, ``.json`` is ``json``; ``fields`` renames (``fields=dict(jpg=
"inputs", txt="caption")``; a field mapped to None is left out). :func:`write_shards` also writes ``index.json`` (the shards and
their sample counts), which the reader uses for the dataset's length; it never scans the shards.
"""
from __future__ import annotations

import glob
import io
import json
import logging
import re
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from maekit.data.images import IMAGE_EXTENSIONS, read_image

__all__ = ["INDEX_NAME", "expand_shards", "ShardDataset", "RawMember", "write_shards", "encode_sample", "shard_order"]

INDEX_NAME = "index.json"
_IMAGE_EXTENSIONS = {extension.lstrip(".") for extension in IMAGE_EXTENSIONS}
_DECODED = {"npy", "cls", "txt", "json", *_IMAGE_EXTENSIONS}
_FIELD_BY_EXTENSION = {"npy": "inputs", "cls": "label", "txt": "text", "json": "json", **{e: "inputs" for e in _IMAGE_EXTENSIONS}}


def expand_shards(shards: str | Sequence[str]) -> list[Path]:
    """Shard names: a list, a glob, a folder (its ``*.tar``), or brace ranges (``data-{000..099}.tar``)."""
    if not isinstance(shards, str):
        names = [str(s) for s in shards]
    else:
        names = [str(Path(shards) / "*.tar")] if Path(shards).is_dir() else [shards]
        pattern = re.compile(r"\{(\d+)\.\.(\d+)\}")
        while any(pattern.search(name) for name in names):
            expanded = []
            for name in names:
                match = pattern.search(name)
                if not match:
                    expanded.append(name)
                    continue
                first, last = match.groups()
                for number in range(int(first), int(last) + 1):
                    expanded.append(name[:match.start()] + str(number).zfill(len(first)) + name[match.end():])
            names = expanded
        names = [found for name in names for found in (sorted(glob.glob(name)) if glob.has_magic(name) else [name])]
    paths = [Path(name) for name in names]
    if not paths:
        raise ValueError(f"webdataset shards {shards!r} matched no file")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"webdataset shards not found: {missing}")
    return paths


def shard_order(count: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The shards' order in one pass: a permutation drawn from (seed, pass), or as listed."""
    if not shuffle:
        return list(range(count))
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(count, generator=generator).tolist()


@dataclass(frozen=True)
class RawMember:
    """A member kept as its bytes (a format core does not decode: ``.mp4``, ``.flac``, ``.ply``):
    what a field transform of that field receives. ``as_file()`` lends it as a temporary file with
    its own extension, for readers that take a path (PyAV, soundfile, a point-cloud reader)."""

    name: str
    data: bytes

    @property
    def suffix(self) -> str:
        return "." + self.name.rsplit(".", 1)[-1].lower()

    @contextmanager
    def as_file(self) -> Iterator[Path]:
        """The bytes as a temporary file (removed afterwards); a ValueError raised meanwhile names
        the member instead of the temporary path."""
        with tempfile.TemporaryDirectory(prefix="maekit-member-") as folder:
            path = Path(folder) / f"member{self.suffix}"
            path.write_bytes(self.data)
            try:
                yield path
            except ValueError as error:
                raise ValueError(str(error).replace(str(path), self.name)) from None


def _decode(name: str, extension: str, data: bytes, channels: int) -> Any:
    if extension == "npy":
        array = np.load(io.BytesIO(data), allow_pickle=False)
        return torch.from_numpy(np.ascontiguousarray(array))
    if extension == "cls":
        return int(data.decode("utf-8").strip())
    if extension == "txt":
        return data.decode("utf-8")
    if extension == "json":
        return json.loads(data.decode("utf-8"))
    if extension in _IMAGE_EXTENSIONS:
        return read_image(io.BytesIO(data), channels)  # type: ignore[arg-type]  (Pillow reads file objects)
    raise ValueError(f"{name}: no decoder for .{extension} (npy, cls, txt, json or an image); give its field a "
                     f"field_transforms entry that reads it (e.g. maekit-video's video_clip_bytes)")


class ShardDataset:
    """``type="shards"``: WebDataset tar shards read as a stream (``data.dataset`` of a training
    config; the trainer streams it, see :class:`maekit.data.streaming.StreamedView`).

    ``shards``: a folder of ``*.tar``, a glob, brace ranges or a list. ``fields``: renames,
    ``{"FIELD.EXT" or "EXT": name}``, None to leave a member out (img2dataset's ``json``, whose
    nulls the batch collation refuses). ``channels``: for images stored as image files. ``length``:
    the sample count when the shards have no ``index.json`` (else counted from the tar headers
    once, at the start of training).
    ``shuffle``: each pass visits the shards in a seeded order and each shard's samples in a seeded
    permutation (by seeking in the tar); False reads shards as listed, front to back.
    ``field_transforms``: a registered transform per field, applied after decoding (a caption's
    text into token ids: FLIP's ``flip_tokenize``). ``on_error="skip"``: a sample that cannot be
    decoded is logged with its shard and member and left out (its position still counts, so
    cursors stay valid; logged again on every pass), counted in ``skipped`` (of the copy that read
    it: each loader worker has its own); ``"raise"`` (default) stops with that message.
    Not indexable: a probe or fine-tuning set must be map-style (``maekit shards`` writes shards
    *from* a map-style dataset, which can still serve those)."""

    modality = "any"

    def __init__(self, shards: str | Sequence[str], fields: dict[str, str | None] | None = None, channels: int = 3,
                 length: int | None = None, shuffle: bool = True, field_transforms: dict[str, Any] | None = None,
                 on_error: str = "raise") -> None:
        from maekit.data.skipping import check_on_error
        from maekit.registry import build

        self.paths = expand_shards(shards)
        self.shuffle = shuffle
        self.on_error, self.skipped = check_on_error(on_error), 0
        self.field_transforms = {field: build("transform", transform) if isinstance(transform, dict) else transform
                                 for field, transform in (field_transforms or {}).items()}
        for field, transform in self.field_transforms.items():
            if not callable(transform):
                raise ValueError(f"shards field_transforms[{field!r}]: expected a transform config "
                                 f"(dict(type=...)) or a callable, got {transform!r}")
        self.fields = dict(fields or {})
        self.channels = channels
        self.counts = self._indexed_counts()
        self.length = sum(self.counts) if self.counts is not None else length

    def _indexed_counts(self) -> list[int] | None:
        """Sample counts from the ``index.json`` beside the shards, when it lists every one."""
        index = self.paths[0].parent / INDEX_NAME
        if not index.is_file():
            return None
        try:
            listed = {entry["name"]: int(entry["samples"]) for entry in json.loads(index.read_text())["shards"]}
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{index}: not a shard index written by maekit shards ({error})") from None
        if any(path.name not in listed for path in self.paths):
            return None
        return [listed[path.name] for path in self.paths]

    def __len__(self) -> int:
        """The sample count: ``index.json``'s, else ``length``, else counted once from every shard's
        member headers (logged: at LAION scale that is hours — write an index or give ``length``)."""
        if self.length is None:
            logging.getLogger("maekit").warning(
                "counting the samples of %d shards from their tar headers (no index.json, no length given): at "
                "LAION scale this takes hours in every process; shards written by maekit shards have an index, "
                "or give the shards dataset length=N", len(self.paths))
            started, count = time.perf_counter(), 0
            for path in self.paths:
                try:
                    with tarfile.open(path, "r:*") as archive:
                        count += sum(1 for _ in _group_by_key(archive, read=False))
                except (tarfile.TarError, EOFError, OSError) as error:
                    raise ValueError(f"{path}: not a readable tar shard ({error})") from None
            self.length = count
            logging.getLogger("maekit").warning("counted %d samples in %.1f s", count, time.perf_counter() - started)
        return int(self.length)

    def __getitem__(self, index: int) -> Any:
        raise TypeError("a shards dataset is read as a stream (maekit train); probes, fine-tuning and "
                        "visualisation need a map-style dataset")

    def field_name(self, member: str, field: str, extension: str) -> str | None:
        """A member's field: a rename in ``fields`` (None: leave the member out), else its own
        name, else by its extension."""
        for key in (f"{field}.{extension}" if field else None, extension, field):
            if key and key in self.fields:
                return self.fields[key]
        if field:
            return "label" if extension == "cls" else field
        if extension in _FIELD_BY_EXTENSION:
            return _FIELD_BY_EXTENSION[extension]
        raise ValueError(f"{member}: no field for a .{extension} member; name one in the shards dataset's fields")

    def samples(self, shard: int, start: int = 0, shuffle_seed: int | None = None,
                finish: bool = True) -> Iterator[tuple[int, str, dict]]:
        """``(offset, key, sample)`` of shard ``shard`` from position ``start`` on. Without
        ``shuffle_seed`` the tar is read front to back (any stream); with it, the member headers
        are read first (data skipped by seeking), then the samples in a permutation drawn from
        ``shuffle_seed``, by seeking. Resuming at ``start`` reads this shard's headers, no other.
        ``finish=False``: the field transforms are left to the caller (:meth:`finish`)."""
        path = self.paths[shard]
        try:
            if shuffle_seed is None:
                with tarfile.open(path, "r|*") as archive:
                    for offset, (key, members) in enumerate(_group_by_key(archive, read=True)):
                        if offset >= start:
                            yield from self._decoded(offset, path, key, members, finish)
                return
            if _compressed(path):
                raise ValueError(f"{path}: a compressed shard cannot be read in a shuffled order (every seek back "
                                 f"decompresses from its start); write plain .tar shards (WebDataset's usual), or "
                                 f"give the shards dataset shuffle=False")
            with tarfile.open(path, "r:") as archive:
                grouped = list(_group_by_key(archive, read=False))
                order = torch.randperm(len(grouped), generator=torch.Generator().manual_seed(shuffle_seed)).tolist()
                for offset in range(start, len(grouped)):
                    key, headers = grouped[order[offset]]
                    members = [(member, archive.extractfile(member).read()) for member in headers]  # type: ignore[union-attr]
                    yield from self._decoded(offset, path, key, members, finish)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ValueError(f"{path}: not a readable tar shard ({error})") from None

    def _decoded(self, offset: int, path: Path, key: str, members: list[tuple[tarfile.TarInfo, bytes]],
                 finish: bool) -> Iterator[tuple[int, str, dict]]:
        """The decoded sample, or nothing for one that cannot be decoded under ``on_error="skip"``."""
        try:
            sample = self._decode_sample(path, key, members)
            sample = self.finish(sample, f"{path}:{key}") if finish else sample
        except ValueError as error:
            self.refuse(error)
            return
        yield offset, key, sample

    def refuse(self, error: ValueError) -> None:
        """A sample that cannot be read: raise (``on_error="raise"``), or log and count it."""
        if self.on_error == "raise":
            raise error
        self.skipped += 1
        logging.getLogger("maekit").warning("skipped an undecodable sample (on_error='skip'): %s", error)

    def _decode_sample(self, path: Path, key: str, members: list[tuple[tarfile.TarInfo, bytes]]) -> dict:
        sample: dict[str, Any] = {}
        for member, data in members:
            name = member.name.rpartition("/")[2]
            parts = name.split(".")
            field, extension = ".".join(parts[1:-1]), parts[-1].lower()
            target = self.field_name(f"{path}:{member.name}", field, extension)
            if target is None:  # left out (fields maps it to None)
                continue
            if target in sample:
                raise ValueError(f"{path}:{member.name}: a second member for field {target!r} of sample {key}; "
                                 f"rename one in the shards dataset's fields")
            if extension not in _DECODED and target in self.field_transforms:  # its transform decodes it
                sample[target] = RawMember(f"{path}:{member.name}", data)
                continue
            try:
                sample[target] = _decode(f"{path}:{member.name}", extension, data, self.channels)
            except (ValueError, OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise ValueError(f"{path}:{member.name}: cannot decode ({error})") from None
        if "inputs" not in sample:
            raise ValueError(f"{path}:{key}: the sample has no inputs (fields {sorted(sample)}); name the member "
                             f"that holds them in the shards dataset's fields")
        return sample

    def finish(self, sample: dict, where: str) -> dict:
        """The sample with its ``field_transforms`` applied (the stream calls this under the
        sample's seed: a transform that draws, a video's clip start, draws reproducibly)."""
        sample = dict(sample)
        for field, transform in self.field_transforms.items():
            if field not in sample:
                raise ValueError(f"{where}: no field {field!r} for its field_transforms (fields {sorted(sample)})")
            try:
                sample[field] = transform(sample[field])
            except ValueError as error:
                raise ValueError(f"{where}: field {field!r}: {error}") from None
        return sample


def _key_of(member: tarfile.TarInfo) -> str | None:
    folder, _, name = member.name.rpartition("/")
    stem, dot, _ = name.partition(".")
    if not member.isfile() or not dot or not stem:  # directories, hidden files, names without a field
        return None
    return f"{folder}/{stem}" if folder else stem


def _compressed(path: Path) -> bool:
    """Whether a shard is gzip, bzip2 or xz compressed (by its first bytes, whatever its name)."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    return head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))


def _group_by_key(archive: tarfile.TarFile, read: bool) -> Iterator[tuple[str, list[Any]]]:
    """A tar's samples: consecutive members with one key, each ``(member, bytes)`` when ``read``
    (a stream, read front to back), else the member header alone (a seekable file: data skipped).
    A key whose members are not consecutive (``tar cf x.tar *.jpg *.cls``) is an error naming it."""
    key, members, finished = None, [], set()
    for member in archive:
        member_key = _key_of(member)
        if member_key is None:
            continue
        if member_key != key and members:
            yield key, members  # type: ignore[misc]
            finished.add(key)
            members = []
        if member_key in finished:
            raise ValueError(f"{archive.name}: the members of sample {member_key} are not consecutive ({member.name} "
                             f"comes after other samples'); write each sample's files together, as WebDataset's "
                             f"writers and maekit shards do")
        key = member_key
        members.append((member, archive.extractfile(member).read()) if read else member)  # type: ignore[union-attr]
    if members:
        yield key, members  # type: ignore[misc]


def encode_sample(sample: dict[str, Any], where: str) -> list[tuple[str, bytes]]:
    """A sample's members ``(FIELD.EXT, bytes)``: tensors and arrays as ``.npy``, the label as
    ``cls``, strings as ``.txt``, other plain values as ``.json``."""
    members = []
    for field, value in sample.items():
        if "." in field or "/" in field:
            raise ValueError(f"{where}: field {field!r}: a field name may not hold '.' or '/'")
        if isinstance(value, (torch.Tensor, np.ndarray)):
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            if array.dtype == object:
                raise ValueError(f"{where}: field {field!r} is an object array; only numeric arrays are stored")
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
            members.append((f"{field}.npy", buffer.getvalue()))
        elif field == "label" and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            members.append(("cls", str(int(value)).encode()))
        elif isinstance(value, str):
            members.append((f"{field}.txt", value.encode("utf-8")))
        else:
            try:
                members.append((f"{field}.json", json.dumps(value).encode("utf-8")))
            except TypeError:
                raise ValueError(f"{where}: field {field!r} holds a {type(value).__name__}; shards store tensors, "
                                 f"arrays, strings and JSON values") from None
    return members


def write_shards(dataset: Any, out: str | Path, shard_size: int, prefix: str = "shard", seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write every sample of a map-style dataset, in index order, into tar shards of
    ``shard_size`` samples (``OUT/PREFIX-000000.tar`` ...), then ``OUT/index.json``. Each shard is
    written to a temporary file and renamed when complete, the index last: a killed conversion
    leaves no partial shard and no index naming one. Sample ``i`` is read under torch's generator
    seeded from (``seed``, i): a dataset that draws while reading (a video's clip) stores one
    reproducible draw per sample."""
    from maekit.data.views import mix_seed
    from maekit.io.checkpoint import atomic_write

    def read(index: int) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(seed, index))
            return dataset[index]

    if shard_size < 1:
        raise ValueError(f"--shard-size must be at least 1, got {shard_size}")
    total = len(dataset)
    if total < 1:
        raise ValueError("the dataset has no samples to write")
    out = Path(out)
    digits = max(6, len(str((total - 1) // shard_size)))
    written, entries = [], []
    for first in range(0, total, shard_size):
        path = out / f"{prefix}-{first // shard_size:0{digits}d}.tar"
        count = min(shard_size, total - first)

        def write(tmp: str, first: int = first, count: int = count, path: Path = path) -> None:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as archive:
                for index in range(first, first + count):
                    key = f"{index:09d}"
                    for name, data in encode_sample(read(index), f"sample {index}"):
                        info = tarfile.TarInfo(f"{key}.{name}")
                        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                        archive.addfile(info, io.BytesIO(data))

        written.append(atomic_write(path, write))
        entries.append({"name": path.name, "samples": count})
        if progress is not None:
            progress(first + count, total)
    index = {"format": "webdataset", "samples": total, "shards": entries}
    atomic_write(out / INDEX_NAME, lambda tmp: Path(tmp).write_text(json.dumps(index, indent=1)))
    return written
