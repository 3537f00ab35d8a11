"""H&E tiles with their stain channels: folders of tiles, a stain cache, the multi-modal
augmentation, and the bundled demo tiles.

A sample's ``"inputs"`` is the RGB tile (3×H×W in [0, 1]) with, when stains are asked for, the
standardised haematoxylin and eosin images appended (5×H×W). Stacking them as channels keeps the
three modalities aligned through any crop; :class:`MultiModalAugment` crops them apart only when
asked (the reference's quirk).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.data.bundled import ImageTilesDataset
from maekit.data.images import IMAGE_EXTENSIONS, ImageFolderDataset
from maekit.data.views import MAEAugment, default_mean_std
from maekit.io.checkpoint import write_arrays, write_json
from maekit_pathology.stains import StainSeparation, stain_check

__all__ = ["PathologyTiles", "DemoTiles", "MultiModalAugment", "write_stain_cache", "DEMO_SOURCES"]

CACHE_MANIFEST = "stain_cache.json"


class PathologyTiles(ImageFolderDataset):
    """H&E tiles in an ImageFolder-style tree (NCT-CRC-HE-100K: ``root/<CLASS>/*.tif``; labels
    by sorted class name, ``classes`` selects and orders them, ``exclude=["BACK"]`` drops
    background as the MMAE reference does) or a flat folder of unlabelled tiles.

    ``stains``: None (RGB only, for evaluation), ``"ruifrok"`` or ``"vahadane"`` (computed per
    tile on loading), or ``"cache"`` with ``stain_cache`` the folder written by
    ``maekit pathology-stains`` (one ``.npz`` per tile, same relative path).

    ``stain_check`` (:func:`~maekit_pathology.stains.stain_check`): a grayscale tile is always
    unusable (an error naming the file, or skipped and listed with ``on_error="skip"``); a tile that
    looks like an IHC (DAB) stain — a heuristic — is logged once (``"warn"``, default) or unusable
    too (``"refuse"``); ``"off"`` looks at neither.
    """

    def __init__(self, root: str | Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 stains: str | None = None, stain_cache: str | Path | None = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, on_error: str = "raise",
                 stain_check: str = "warn") -> None:
        super().__init__(root, channels=3, classes=classes, exclude=exclude, extensions=extensions, on_error=on_error)
        if stain_check not in ("refuse", "warn", "off"):
            raise ValueError(f"stain_check must be 'refuse', 'warn' or 'off', got {stain_check!r}")
        self.stain_check = stain_check
        self.warned_files: set[Path] = set()
        if stains not in (None, "ruifrok", "vahadane", "cache"):
            raise ValueError(f"stains must be None, 'ruifrok', 'vahadane' or 'cache', got {stains!r}")
        if (stains == "cache") != (stain_cache is not None):
            raise ValueError("stains='cache' and stain_cache=FOLDER go together (the folder written by "
                             "`maekit pathology-stains`)")
        self.stains = stains
        self.separation = StainSeparation(stains) if stains in ("ruifrok", "vahadane") else None
        self.stain_cache = None if stain_cache is None else Path(stain_cache)
        if self.stain_cache is not None and not (self.stain_cache / CACHE_MANIFEST).is_file():
            raise ValueError(f"{self.stain_cache}: not a stain cache (no {CACHE_MANIFEST}); write one with "
                             f"`maekit pathology-stains {self.root} --out {self.stain_cache}`")

    def read(self, path: Path) -> torch.Tensor:
        """The tile (checked) and, with ``stains``, its two stain images: 3 or 5 × H × W. Read here,
        per file, so a tile served in place of a skipped one brings its own stains."""
        rgb = super().read(path)
        self.check_stains(path, rgb)
        if self.stains is None:
            return rgb
        if self.separation is not None:
            return self.separation(rgb)
        return torch.cat([rgb, self.cached_stains(path, tuple(rgb.shape[-2:]))])

    def check_stains(self, path: Path, rgb: torch.Tensor) -> None:
        if self.stain_check == "off":
            return
        problem = stain_check(rgb)
        if problem is None:
            return
        kind, reason = problem
        if kind == "grayscale" or self.stain_check == "refuse":
            raise ValueError(f"{path}: {reason} (stain_check='off' to use it anyway)")
        if path not in self.warned_files:  # once per file, not once per epoch
            self.warned_files.add(path)
            logging.getLogger("maekit").warning("%s: %s", path, reason)

    def cached_stains(self, path: Path, size: tuple[int, int]) -> torch.Tensor:
        cached = self.stain_cache / path.relative_to(self.root).with_suffix(".npz")
        if not cached.is_file():
            raise ValueError(f"{cached}: no cached stains for {path}; rerun `maekit pathology-stains` on {self.root}")
        with np.load(cached, allow_pickle=False) as arrays:
            stains = np.stack([arrays["hematoxylin"], arrays["eosin"]]).astype(np.float32)
        if stains.shape[1:] != size:
            raise ValueError(f"{cached}: stain images are {stains.shape[1:]}, the tile {path} is {size}; "
                             f"the cache is stale, rerun `maekit pathology-stains`")
        return torch.from_numpy(stains)


def write_stain_cache(root: str | Path, out: str | Path, method: str = "vahadane", log: Any = None,
                      exclude: Sequence[str] = ()) -> int:
    """Separate the stains of every tile under ``root`` (classes in ``exclude`` left out) once and
    store them (float16 ``.npz`` per tile, same relative path, plus a manifest); returns the number
    of tiles written. A tile with no tissue gets the Ruifrok vectors (Vahadane has nothing to learn
    from); each one is logged and listed in the manifest's ``ruifrok_fallbacks``. Any other problem
    names the tile."""
    out = Path(out)
    tiles = PathologyTiles(root, exclude=exclude, stain_check="off")
    separation = StainSeparation(method)
    fallbacks: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    for index, (path, _) in enumerate(tiles.samples):
        before = separation.ruifrok_fallbacks
        try:
            stains = separation.stains(tiles[index]["inputs"]).numpy().astype(np.float16)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        relative = path.relative_to(tiles.root)
        if separation.ruifrok_fallbacks > before:
            fallbacks.append(str(relative))
            if log is not None:
                log(f"{relative}: no tissue pixels for Vahadane; stains from the Ruifrok vectors")
        write_arrays(out / relative.with_suffix(".npz"), hematoxylin=stains[0], eosin=stains[1])
        if log is not None and (index + 1) % 500 == 0:
            log(f"{index + 1}/{len(tiles)} tiles")
    write_json(out / CACHE_MANIFEST, {"root": str(tiles.root), "method": method, "tiles": len(tiles),
                                      "excluded_classes": list(exclude), "ruifrok_fallbacks": fallbacks}, indent=None)
    return len(tiles)


class MultiModalAugment:
    """MMAE's pre-training view of a 5-channel sample (r, g, b, H, E): random resized crop and
    horizontal flip — the same crop for every modality (``crop="aligned"``, default) or RGB and the
    stain images cropped independently (``"unaligned"``, as the reference does) — then RGB
    normalised (ImageNet statistics) while the already standardised stain images are left as they are.
    A 3-channel (RGB only) sample is cropped and normalised alike."""

    def __init__(self, size: int | Sequence[int] = 224, scale: Sequence[float] = (0.2, 1.0), flip: bool = True,
                 crop: str = "aligned", mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        if crop not in ("aligned", "unaligned"):
            raise ValueError(f"crop must be 'aligned' or 'unaligned', got {crop!r}")
        self.crop = crop
        self.augment = MAEAugment(size, scale=scale, flip=flip, mean=(0.0,), std=(1.0,))
        self.mean, self.std = mean or default_mean_std(3)[0], std or default_mean_std(3)[1]

    def _view(self, image: torch.Tensor) -> torch.Tensor:
        return self.augment.augment(image)  # crop and flip only; clamping and normalising come after

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[0] not in (3, 5):
            raise ValueError(f"expected an RGB tile (3 channels) or RGB + H + E (5), got {image.shape[0]} channels")
        if self.crop == "aligned" or image.shape[0] == 3:
            view = self._view(image)
        else:
            view = torch.cat([self._view(image[:3]), self._view(image[3:])])
        rgb = (view[:3].clamp(0, 1) - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)
        return torch.cat([rgb, view[3:]])


DEMO_SOURCES = ("immunohistochemistry", "astronaut", "chelsea", "coffee", "rocket", "brick", "grass", "gravel")


class DemoTiles(Dataset):
    """Demo data: tiles of scikit-image's bundled real images — the immunohistochemistry slide
    (haematoxylin + DAB stained tissue), photographs and natural textures — labelled
    by source image (a tile-source classification probe). Every fifth tile of each source is held
    out (``split="test"``). ``stains`` as :class:`PathologyTiles` (``"ruifrok"`` to pre-train)."""

    modality = "image"

    def __init__(self, split: str = "train", tile: int = 32, sources: Sequence[str] = DEMO_SOURCES,
                 stains: str | None = None) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"demo split must be 'train', 'test' or 'all', got {split!r}")
        tiles = ImageTilesDataset(sources, tile=tile)
        held_out = np.zeros(len(tiles), dtype=bool)
        for label in range(len(sources)):
            held_out[np.flatnonzero(tiles.labels.numpy() == label)[::5]] = True
        keep = np.flatnonzero({"train": ~held_out, "test": held_out, "all": np.ones_like(held_out)}[split])
        # classes interleaved (one tile of each source in turn), so any first few tiles show every source
        labels = tiles.labels.numpy()[keep]
        rank = np.zeros(len(labels), dtype=np.int64)
        for label in range(len(sources)):
            rank[labels == label] = np.arange(int((labels == label).sum()))
        order = np.lexsort((labels, rank))
        self.images = tiles.images[torch.from_numpy(keep[order])]
        self.labels = tiles.labels[torch.from_numpy(keep[order])]
        self.classes = list(sources)
        if stains is not None:
            self.images = torch.cat([self.images, StainSeparation(stains).stains(self.images)], dim=1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": self.images[index], "label": int(self.labels[index])}
