"""Real data bundled with well-kept packages: scikit-learn's digits and scikit-image's photographs;
and the folder a plugin's demo writes its generated files into once."""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["DigitsDataset", "ImageTilesDataset", "TILE_SOURCES", "demo_folder"]


def demo_folder(name: str, settings: str, write: Callable[[Path], Any], root: str | Path | None = None) -> Path:
    """The folder of a demo's generated files: ``root``, or one in the system's temporary directory
    named by ``name`` and a hash of ``settings``. Made once, when absent, by ``write(folder)`` into a
    sibling staging folder renamed into place: a reader in another process never sees half a folder,
    and if another process got there first its folder is kept."""
    folder = Path(root) if root is not None else Path(tempfile.gettempdir()) / (
        f"{name}_{hashlib.sha1(settings.encode()).hexdigest()[:10]}")
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + "-", dir=folder.parent))
    try:
        write(staging)
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():  # not another process's finished folder: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


TILE_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "gravel")


class DigitsDataset(Dataset):
    """scikit-learn's handwritten digits (1797 8×8 images, 10 classes), upsampled to ``size``.

    ``split`` is a fixed stratified 80/20 split ("train" 1437 images, "test" 360) or "all".
    Values are scaled from 0–16 to [0, 1]; one channel, or three replicated. ``fraction`` keeps a
    stratified share of the split (0.1 of "train": 143 images), the same for a given ``seed``.
    """

    modality = "image"

    def __init__(self, split: str = "train", size: int = 32, channels: int = 1, seed: int = 0, fraction: float = 1.0) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        if split not in ("train", "test", "all"):
            raise ValueError(f"digits split must be 'train', 'test' or 'all', got {split!r}")
        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
        labels = torch.from_numpy(digits.target.astype(np.int64))
        if split != "all":
            train, test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=digits.target,
                                           random_state=seed)
            keep = torch.from_numpy(train if split == "train" else test)
            images, labels = images[keep], labels[keep]
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"digits fraction must be in (0, 1], got {fraction!r}")
        if fraction < 1.0:  # a stratified share of the split (small-data experiments)
            if round(fraction * len(labels)) < 10:
                raise ValueError(f"digits fraction {fraction} of the {split} split keeps {round(fraction * len(labels))} "
                                 f"images: a stratified share needs at least one per class (10)")
            share, _ = train_test_split(np.arange(len(labels)), train_size=fraction, stratify=labels.numpy(),
                                        random_state=seed)
            keep = torch.from_numpy(np.sort(share))
            images, labels = images[keep], labels[keep]
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        self.images = images.expand(-1, channels, -1, -1).contiguous()
        self.labels = labels
        self.classes = [str(d) for d in range(10)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": self.images[index], "label": int(self.labels[index])}


class ImageTilesDataset(Dataset):
    """Tiles cut from scikit-image's bundled photographs and textures; the label is the source image.

    Tiles of ``tile`` pixels on a ``stride`` grid, RGB in [0, 1] (grayscale sources replicated).
    """

    modality = "image"

    def __init__(self, sources: Sequence[str] = TILE_SOURCES, tile: int = 64, stride: int | None = None) -> None:
        import skimage.data

        stride = stride or tile
        tiles, labels = [], []
        for label, name in enumerate(sources):
            if not hasattr(skimage.data, name):
                raise ValueError(f"unknown scikit-image sample {name!r}")
            image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
            image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]
            height, width = image.shape[:2]
            for top in range(0, height - tile + 1, stride):
                for left in range(0, width - tile + 1, stride):
                    tiles.append(image[top:top + tile, left:left + tile])
                    labels.append(label)
        self.images = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.tensor(labels)
        self.classes = list(sources)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": self.images[index], "label": int(self.labels[index])}
