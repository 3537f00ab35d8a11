"""The IDX format of the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST ...): one file of
images (``*-images-idx3-ubyte``) and one of labels (``*-labels-idx1-ubyte``), raw or gzipped.

An IDX file is a 4-byte magic number — two zero bytes, a type code (0x08 unsigned byte, 0x09
signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64) and the number of dimensions —
then each dimension as a big-endian int32, then the values, big-endian, row-major.

Debian ships Fashion-MNIST in this form (package ``dataset-fashion-mnist``, installed by
``.ci/setup``) under :data:`FASHION_MNIST_ROOT`.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["read_idx", "find_idx_pair", "IdxImagesDataset", "FASHION_MNIST_ROOT", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")

# type code → big-endian numpy dtype
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
# the names each split's files carry in the MNIST family ("t10k" is MNIST's and Fashion-MNIST's test split)
_SPLIT_NAMES = {"train": ("train",), "test": ("t10k", "test")}


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (raw, or gzipped when it starts with gzip's magic) as a numpy array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: cannot read this IDX file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (expected the magic number 00 00 <type 08/09/0B/0C/0D/0E> <ndim>, "
                         f"got {raw[:4].hex(' ') or 'an empty file'})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header cut short (needs {ndim} dimensions, {header} bytes; the file has {len(raw)})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} of {dtype.name} ({expected} bytes with the header), "
                         f"the file holds {len(raw)} bytes (truncated or not this format)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _split_file(root: Path, split: str, kind: str) -> Path:
    """``root``'s one ``<prefix><split name>-<kind>-idx<n>-ubyte[.gz]`` file of ``split``."""
    found = sorted(p for name in _SPLIT_NAMES[split] for p in root.glob(f"*{name}-{kind}-idx*-ubyte*")
                   if p.name.endswith(("ubyte", "ubyte.gz")))
    # torchvision's MNIST/raw holds each file twice, gzipped and unpacked: the unpacked one is read
    found = [p for p in found if not (p.suffix == ".gz" and p.with_suffix("") in found)]
    if len(found) != 1:
        listing = ", ".join(sorted(p.name for p in root.iterdir())) if root.is_dir() else "(not a folder)"
        raise ValueError(f"{root}: expected one {split} {kind} file named like "
                         f"'{_SPLIT_NAMES[split][0]}-{kind}-idx{'3' if kind == 'images' else '1'}-ubyte[.gz]', "
                         f"found {len(found) or 'none'} ({', '.join(p.name for p in found) or listing})")
    return found[0]


def find_idx_pair(root: str | Path, split: str) -> tuple[Path, Path]:
    """The images and labels files of ``split`` ("train" or "test") in ``root``."""
    if split not in _SPLIT_NAMES:
        raise ValueError(f"idx_images split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if not root.is_dir():
        hint = " (Debian: apt-get install dataset-fashion-mnist)" if str(root) == FASHION_MNIST_ROOT else ""
        raise ValueError(f"idx_images root {root}: no such folder{hint}")
    return _split_file(root, split, "images"), _split_file(root, split, "labels")


class IdxImagesDataset(Dataset):
    """Images and labels from MNIST-family IDX files: ``root`` + ``split`` ("train" finds
    ``*train-images-idx3-ubyte[.gz]`` and its labels, "test" ``*t10k-…`` or ``*test-…``), or the two
    files named by ``images`` and ``labels``. Default root: Debian's Fashion-MNIST.

    Images N×H×W (or N×H×W×C) of bytes become C×``size``×``size`` floats in [0, 1] (values / 255,
    bilinear resize, one channel or replicated to three). ``limit`` keeps a stratified share of that
    many samples (the same for a given ``seed``); ``classes`` names the labels (Fashion-MNIST's names
    for its default root, else the label numbers).
    """

    modality = "image"

    def __init__(self, root: str | Path = FASHION_MNIST_ROOT, split: str = "train", images: str | Path | None = None,
                 labels: str | Path | None = None, size: int = 28, channels: int = 1, limit: int | None = None,
                 seed: int = 0, classes: Sequence[str] | None = None) -> None:
        if (images is None) != (labels is None):
            raise ValueError("idx_images: give both 'images' and 'labels' files, or neither (then root + split)")
        if images is None:
            images, labels = find_idx_pair(root, split)
        assert labels is not None
        pixels, targets = read_idx(images), read_idx(labels)
        if pixels.ndim not in (3, 4) or pixels.dtype != np.uint8 or (pixels.ndim == 4 and pixels.shape[-1] not in (1, 3, 4)):
            raise ValueError(f"{images}: expected bytes of shape N×H×W or N×H×W×C with C 1, 3 or 4 (an images file), "
                             f"got {pixels.dtype.name} of shape {pixels.shape}")
        if targets.ndim != 1 or targets.dtype.kind not in "iu":
            raise ValueError(f"{labels}: expected one integer label per image (an idx1 labels file), "
                             f"got {targets.dtype.name} of shape {targets.shape}")
        if len(targets) != len(pixels):
            raise ValueError(f"{labels} holds {len(targets)} labels for the {len(pixels)} images of {images}")
        if channels not in (1, 3):
            raise ValueError(f"idx_images channels must be 1 or 3, got {channels}")
        if int(size) < 1:
            raise ValueError(f"idx_images size must be a positive number of pixels, got {size}")
        keep = np.arange(len(targets))
        if limit is not None:
            keep = _stratified(targets, int(limit), seed, str(images))
        # N×H×W×C, C 1 or 3 (an alpha channel dropped)
        self.pixels = torch.from_numpy(np.ascontiguousarray(pixels[keep][..., :3] if pixels.ndim == 4 else pixels[keep][..., None]))
        self.labels = torch.from_numpy(targets[keep].astype(np.int64))
        self.size, self.channels = int(size), channels
        count = int(targets.max()) + 1
        if classes is None:  # Fashion-MNIST's names for Debian's files, else the label numbers
            debian = Path(images).parent == Path(FASHION_MNIST_ROOT)
            classes = FASHION_MNIST_CLASSES if debian and count <= 10 else [
                str(c) for c in range(count)]
        self.classes = list(classes)
        if len(self.classes) < count:
            raise ValueError(f"idx_images classes names {len(self.classes)} classes; {labels} has labels up to {count - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.pixels[index].permute(2, 0, 1).float().div(255.0)
        if image.shape[0] != self.channels:  # colour → luminance (ITU-R 601-2, as Pillow), or grey replicated
            image = (image[:3] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True) \
                if self.channels == 1 else image[:1].expand(3, -1, -1)
        if image.shape[-2:] != (self.size, self.size):
            image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        return {"inputs": image.clamp(0, 1).contiguous(), "label": int(self.labels[index])}


def _stratified(labels: np.ndarray, limit: int, seed: int, source: str) -> np.ndarray:
    """Indices of a stratified share of ``limit`` samples (sorted), the same for a given seed."""
    from sklearn.model_selection import train_test_split

    count = len(np.unique(labels))
    if not count <= limit <= len(labels):
        raise ValueError(f"idx_images limit {limit} for {source}: must lie between the number of classes ({count}) "
                         f"and the number of images ({len(labels)})")
    if limit == len(labels):
        return np.arange(len(labels))
    share, _ = train_test_split(np.arange(len(labels)), train_size=limit, stratify=labels, random_state=seed)
    return np.sort(share)
