"""Image datasets: folders of files (anything Pillow reads) and in-memory arrays.

Every sample is ``{"inputs": float tensor C×H×W in [0, 1], "label": int}`` (label −1 when
unlabelled). How pixel formats become channels, the stated rule:

- ``channels=3``: palette, CMYK, YCbCr → RGB through Pillow; RGBA/LA → the alpha is dropped;
  grayscale (8-bit, 16-bit, 32-bit) → replicated to three channels.
- ``channels=1``: colour → luminance (Pillow's ITU-R 601-2); grayscale kept.
- 8-bit values are divided by 255, 16-bit by 65535; 32-bit integer and float images are scaled by
  their own range (min → 0, max → 1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.data.skipping import check_on_error, first_readable

__all__ = ["IMAGE_EXTENSIONS", "read_image", "ImageFolderDataset", "ArrayDataset"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def _to_unit_range(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "u" and array.dtype.itemsize == 1:
        return array.astype(np.float32) / 255.0
    if array.dtype.kind == "u" and array.dtype.itemsize == 2:  # 16-bit, either byte order
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind == "i" and array.dtype.itemsize == 2:  # Pillow's signed 16-bit modes
        return array.astype(np.float32) / 65535.0
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def read_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """Read one image file as a C×H×W float tensor in [0, 1] by the module's rule."""
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I;16"):  # Pillow's 16-bit modes: divide by 65535 whatever the array dtype
                array = np.asarray(image).astype(np.float32) / 65535.0
                array = array[..., None] if channels == 1 else np.repeat(array[..., None], 3, axis=-1)
            elif image.mode in ("I", "F"):
                array = _to_unit_range(np.asarray(image))
                array = array[..., None] if channels == 1 else np.repeat(array[..., None], 3, axis=-1)
            else:
                array = _to_unit_range(np.asarray(image.convert("L" if channels == 1 else "RGB")))
                array = array[..., None] if array.ndim == 2 else array
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from None
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


class ImageFolderDataset(Dataset):
    """Images in class folders (``root/<class>/<file>``, labels by sorted class name, as
    torchvision's ImageFolder) or a flat folder of unlabelled images.

    ``classes`` restricts and orders the classes; ``exclude`` drops some (e.g. ``["BACK"]``).
    ``on_error="raise"`` names a corrupt file in the error; ``"skip"`` serves the next readable file
    instead, logs each unreadable file once (with the reason) and lists them in ``skipped_files``
    (``skipped`` counts them; per process: DataLoader workers keep their own).
    """

    modality = "image"

    def __init__(self, root: str | Path, channels: int = 3, classes: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 on_error: str = "raise") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"image folder {self.root} does not exist or is not a folder")
        self.channels, self.on_error = channels, check_on_error(on_error)
        self.skipped_files: dict[Path, str] = {}
        extensions = tuple(e.lower() for e in extensions)
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes is not None:
            missing = [c for c in classes if c not in folders]
            if missing:
                raise ValueError(f"{self.root}: class folders {missing} not found; present: {folders}")
            folders = list(classes)
        if isinstance(exclude, str):
            raise ValueError(f"exclude must be a list of class folder names, got the string {exclude!r}")
        unknown = [c for c in exclude if c not in folders]
        if unknown and folders:  # a flat folder has no classes to exclude: nothing to check
            raise ValueError(f"{self.root}: excluded classes {unknown} not found; present: {folders}")
        self.classes = [c for c in folders if c not in set(exclude)]
        if self.classes:
            self.samples = [(path, label) for label, name in enumerate(self.classes)
                            for path in sorted((self.root / name).rglob("*")) if path.suffix.lower() in extensions]
        else:
            self.samples = [(path, -1) for path in sorted(self.root.iterdir()) if path.suffix.lower() in extensions]
        if not self.samples:
            raise ValueError(f"{self.root}: no image files with extensions {', '.join(extensions)}")

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, path: Path) -> torch.Tensor:
        """One file as C×H×W in [0, 1]; a ValueError naming the file for one that cannot be used
        (a subclass adds its modality's checks here, under the same ``on_error`` policy)."""
        return read_image(path, self.channels)

    @property
    def skipped(self) -> int:
        """How many distinct files were skipped as unreadable."""
        return len(self.skipped_files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = first_readable(index, len(self.samples), self.sample, lambda i: self.samples[i][0], self.on_error,
                                self.skipped_files, "image")
        if sample is None:
            raise ValueError(f"{self.root}: no readable image left")
        return sample

    def sample(self, index: int) -> dict[str, Any]:
        path, label = self.samples[index]
        return {"inputs": self.read(path), "label": label}


class ArrayDataset(Dataset):
    """Images held in memory: an array N×H×W, N×H×W×C or N×C×H×W (uint8 in 0–255, uint16 in
    0–65535, or float in [0, 1]; anything else is refused), with optional integer labels."""

    modality = "image"

    def __init__(self, images: np.ndarray | torch.Tensor, labels: Sequence[int] | np.ndarray | None = None,
                 channels_last: bool | None = None) -> None:
        images = torch.as_tensor(np.asarray(images))
        if images.dim() == 3:
            images = images.unsqueeze(1)
        elif images.dim() == 4:
            if channels_last is None:  # channels are the small axis
                channels_last = images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4)
            if channels_last:
                images = images.permute(0, 3, 1, 2)
        else:
            raise ValueError(f"images must be N×H×W, N×H×W×C or N×C×H×W, got shape {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        elif images.dtype == torch.uint16:
            images = images.float() / 65535.0
        elif images.is_floating_point():
            images = images.float()
            if images.numel() and (images.min() < 0 or images.max() > 1):
                raise ValueError(f"float images must lie in [0, 1]; got values in [{images.min():.3g}, {images.max():.3g}]")
        else:
            raise ValueError(f"images of dtype {images.dtype} are ambiguous: pass uint8 (0–255), uint16 (0–65535) "
                             f"or floats in [0, 1]")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images.contiguous()
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long) if labels is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        label = int(self.labels[index]) if self.labels is not None else -1
        return {"inputs": self.images[index], "label": label}
