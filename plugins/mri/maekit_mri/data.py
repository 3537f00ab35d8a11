"""MRI slice datasets (single contrasts for pre-training, source/target pairs for synthesis), the
slice cache, the pre-training augmentation, and the demo data from nibabel's bundled volume."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.data.skipping import check_on_error
from maekit.io.checkpoint import write_array, write_json
from maekit_mri.nifti import (
    BRATS_CONTRASTS,
    Preprocessing,
    find_subjects,
    load_subject,
    load_volume,
    split_subjects,
    volume_slices,
)

__all__ = ["MRISlices", "MRIPairs", "MRIAugment", "write_slice_cache", "DemoVolumeSlices", "simulated_contrast"]

CACHE_MANIFEST = "slice_cache.json"


def _preprocessing(options: dict | Preprocessing | None) -> Preprocessing:
    if isinstance(options, Preprocessing):
        return options
    options = dict(options or {})
    for key in ("crop", "slices", "percentiles"):
        if options.get(key) is not None:
            options[key] = tuple(options[key])
    try:
        return Preprocessing(**options)
    except TypeError as error:
        raise ValueError(f"preprocessing: {error} (fields: crop, slices, size, axis, percentiles)") from None


class _SubjectSlices(Dataset):
    """Slices of every subject of a split, per contrast, preprocessed at construction (or read,
    memory-mapped, from a slice cache written by ``maekit mri-preprocess``)."""

    def __init__(self, root: str | Path | None, layout: str, contrasts: Sequence[str], split: str,
                 train_fraction: float, seed: int, preprocessing: dict | Preprocessing | None,
                 cache: str | Path | None, on_error: str = "raise") -> None:
        check_on_error(on_error)
        self.preprocessing = _preprocessing(preprocessing)
        self.contrasts = tuple(contrasts)
        self.skipped_subjects: dict[str, str] = {}
        skipping = self.skipped_subjects if on_error == "skip" else None
        if cache is not None:
            manifest = self._read_manifest(Path(cache))
            every_subject = manifest["subjects"]
            self.skipped_subjects.update(manifest.get("skipped", {}))
        elif root is None:
            raise ValueError("give the data folder (root) or a slice cache (cache)")
        else:
            found = find_subjects(root, layout, self.contrasts, skipping)
            every_subject = list(found)
        # split first, then drop unusable subjects: a broken volume never moves another subject across splits
        self.subjects = split_subjects(every_subject, split, train_fraction, seed)
        if not self.subjects:
            raise ValueError(f"split {split!r} has no subjects (train_fraction {train_fraction})")
        self.volumes, self.affines = {}, {}
        for subject in list(self.subjects):
            try:
                loaded = load_subject(found[subject]) if cache is None else {}
            except ValueError as error:
                if skipping is None:
                    raise
                skipping[subject] = str(error)
                logging.getLogger("maekit").warning("skipped subject %s (on_error='skip'): %s", subject, error)
                self.subjects.remove(subject)
                continue
            for contrast in self.contrasts:
                if cache is not None:
                    path = Path(cache) / subject / f"{contrast}.npy"
                    if not path.is_file():
                        raise ValueError(f"{path}: missing from the slice cache; rerun `maekit mri-preprocess`")
                    self.volumes[subject, contrast] = np.load(path, mmap_mode="r")
                    self.affines[subject, contrast] = np.asarray(manifest["affines"][subject][contrast])
                else:
                    data, self.affines[subject, contrast] = loaded[contrast]
                    self.volumes[subject, contrast] = volume_slices(data, self.preprocessing, str(found[subject][contrast]))
            shapes = {self.volumes[subject, c].shape for c in self.contrasts}  # (also after the cache)
            if len(shapes) > 1:
                raise ValueError(f"{cache or root}: subject {subject}'s contrasts give different slice stacks "
                                 f"{sorted(shapes)}; the volumes must share one grid")
        self.index = [(subject, k) for subject in self.subjects
                      for k in range(len(self.volumes[subject, self.contrasts[0]]))]

    def _read_manifest(self, cache: Path) -> dict:
        """The cache's manifest, after checking it was written with this preprocessing and holds
        these contrasts."""
        manifest_path = cache / CACHE_MANIFEST
        if not manifest_path.is_file():
            raise ValueError(f"{cache}: not a slice cache (no {CACHE_MANIFEST}); write one with `maekit mri-preprocess`")
        manifest = json.loads(manifest_path.read_text())
        if manifest["preprocessing"] != json.loads(json.dumps(asdict(self.preprocessing))):
            raise ValueError(f"{cache}: written with preprocessing {manifest['preprocessing']}, asked for "
                             f"{asdict(self.preprocessing)}; rerun `maekit mri-preprocess`")
        missing = [c for c in self.contrasts if c not in manifest["contrasts"]]
        if missing:
            raise ValueError(f"{cache}: holds contrasts {manifest['contrasts']}, not {missing}")
        return manifest

    def __len__(self) -> int:
        return len(self.index)

    def slice_of(self, subject: str, contrast: str, k: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.volumes[subject, contrast][k], dtype=np.float32))[None]


class MRISlices(_SubjectSlices):
    """Single-contrast slices for Edge-MAE pre-training (unpaired: every contrast of every subject
    of the split is its own image), ``{"inputs": 1×S×S in [0, 1], "label": -1}``.

    ``root`` + ``layout`` ("brats": ``root/<subject>/*_t1.nii.gz`` …; "ixi": flat
    ``<subject>-T1.nii.gz`` …), ``contrasts``, ``split`` of the subjects (80/20 by ``seed``),
    ``preprocessing`` (crop, slices, size, axis, percentiles), or ``cache`` (``maekit mri-preprocess``)."""

    modality = "image"

    def __init__(self, root: str | Path | None = None, layout: str = "brats", contrasts: Sequence[str] = BRATS_CONTRASTS,
                 split: str = "train", train_fraction: float = 0.8, seed: int = 0,
                 preprocessing: dict | None = None, cache: str | Path | None = None, on_error: str = "raise") -> None:
        super().__init__(root, layout, contrasts, split, train_fraction, seed, preprocessing, cache, on_error)
        self.items = [(subject, contrast, k) for subject, k in self.index for contrast in self.contrasts]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        subject, contrast, k = self.items[index]
        return {"inputs": self.slice_of(subject, contrast, k), "label": -1}


class MRIPairs(_SubjectSlices):
    """Aligned source/target slices for synthesis (MT-Net: T1 → T2): ``{"inputs": source,
    "target": target, "subject", "slice"}``; the same data arguments as :class:`MRISlices`."""

    modality = "image"

    def __init__(self, root: str | Path | None = None, layout: str = "brats", source: str = "t1", target: str = "t2",
                 split: str = "train", train_fraction: float = 0.8, seed: int = 0,
                 preprocessing: dict | None = None, cache: str | Path | None = None, on_error: str = "raise") -> None:
        if source == target:
            raise ValueError(f"source and target contrasts must differ, got {source!r} twice")
        super().__init__(root, layout, (source, target), split, train_fraction, seed, preprocessing, cache, on_error)
        self.source, self.target = source, target

    def __getitem__(self, index: int) -> dict[str, Any]:
        subject, k = self.index[index]
        return {"inputs": self.slice_of(subject, self.source, k), "target": self.slice_of(subject, self.target, k),
                "subject": subject, "slice": k, "label": -1}


def write_slice_cache(root: str | Path, out: str | Path, layout: str = "brats", contrasts: Sequence[str] = BRATS_CONTRASTS,
                      preprocessing: dict | None = None, log: Any = None, skip_invalid: bool = False) -> int:
    """Preprocess every subject once: ``out/<subject>/<contrast>.npy`` (float16, S×size×size) and a
    manifest with the preprocessing and each volume's affine; returns the number of subjects. With
    ``skip_invalid`` a subject that cannot be used (a missing contrast, an unreadable or NaN volume,
    contrasts on different grids) is left out, logged and listed in the manifest's ``skipped``."""
    out = Path(out)
    steps = _preprocessing(preprocessing)
    skipped: dict[str, str] | None = {} if skip_invalid else None
    found = find_subjects(root, layout, contrasts, skipped)
    affines: dict[str, dict[str, list]] = {}
    written = []
    for number, (subject, files) in enumerate(found.items(), 1):
        try:
            volumes = load_subject(files)
            slices = {contrast: volume_slices(data, steps, str(files[contrast])) for contrast, (data, _) in volumes.items()}
        except ValueError as error:
            if skipped is None:
                raise
            skipped[subject] = str(error)
            if log is not None:
                log(f"skipped {subject}: {error}")
            continue
        (out / subject).mkdir(parents=True, exist_ok=True)
        for contrast, array in slices.items():
            write_array(out / subject / f"{contrast}.npy", array.astype(np.float16))
            affines.setdefault(subject, {})[contrast] = volumes[contrast][1].tolist()
        written.append(subject)
        if log is not None:
            log(f"{number}/{len(found)} {subject}")
    if not written:
        raise ValueError(f"{root}: no usable subject ({len(skipped or {})} skipped)")
    manifest = {"root": str(root), "layout": layout, "contrasts": list(contrasts), "subjects": written,
                "preprocessing": json.loads(json.dumps(asdict(steps))), "affines": affines, "skipped": skipped or {}}
    write_json(out / CACHE_MANIFEST, manifest, indent=1)
    return len(written)


class MRIAugment:
    """Edge-MAE's pre-training augmentation of a 1×H×W slice in [0, 1]: horizontal flip, a random
    multiple of 90° rotation (square slices), Gaussian noise, salt-and-pepper, brightness, contrast
    and sharpness — each applied with probability ``p``; values clamped to [0, 1]. ``mean``/``std``
    stay 0/1 for Edge-MAE (its heads are sigmoids over [0, 1] slices); evaluation reads them too."""

    def __init__(self, p: float = 0.5, noise_std: float = 0.02, salt_pepper: float = 0.01,
                 strength: float = 0.2, mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,)) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.noise_std, self.salt_pepper, self.strength = p, noise_std, salt_pepper, strength
        self.mean, self.std = tuple(mean), tuple(std)

    def _happens(self) -> bool:
        return bool(torch.rand(()) < self.p)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        if self._happens():
            image = image.flip(-1)
        if image.shape[-1] == image.shape[-2] and self._happens():
            image = torch.rot90(image, int(torch.randint(1, 4, ())), dims=(-2, -1))
        if self._happens():
            image = image + self.noise_std * torch.randn_like(image)
        if self._happens():
            spots = torch.rand_like(image)
            image = torch.where(spots < self.salt_pepper / 2, 0.0, torch.where(spots > 1 - self.salt_pepper / 2, 1.0, image))
        image = image.clamp(0, 1)
        for adjust in (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_sharpness):
            if self._happens():
                image = adjust(image, float(1 + self.strength * (2 * torch.rand(()) - 1)))
        image = image.clamp(0, 1)
        return ((image - self.mean[0]) / self.std[0]).contiguous()


def simulated_contrast(t1: np.ndarray) -> np.ndarray:
    """A stand-in second contrast made from a T1 image (nibabel bundles no paired contrasts): inside
    the head (T1 foreground, smoothed), intensities inverted and bent, ``(1 − t1)^1.5`` — tissue that
    is bright in T1 becomes dark, fluid becomes bright, roughly as in T2. Stated as simulated."""
    from scipy.ndimage import gaussian_filter

    head = gaussian_filter((t1 > 0.08).astype(np.float32), 1.0)
    return (head * (1 - t1) ** 1.5).astype(np.float32).clip(0, 1)


class DemoVolumeSlices(Dataset):
    """Demo data: nibabel's bundled real T1 volume (``anatomical.nii``, 33×41×25), normalised as
    any volume here, sliced along all three axes (slices with under 10% foreground dropped), each
    slice zero-padded to a square and resized to ``size``. ``split``: "test" = every fifth slice
    along each axis, "train" = the others, "all". One subject only, so held-out slices have
    neighbours in training — a demo split, not the subject-level split real data gets.

    ``contrasts``: which single images to serve — "t1" and/or "simulated"
    (:func:`simulated_contrast`), unpaired, as Edge-MAE pre-trains on every contrast.
    ``pairs=True`` serves T1 → simulated pairs for synthesis instead, of every ``paired_every``-th
    slice (the few paired slices a synthesis task has, while pre-training sees all)."""

    modality = "image"

    def __init__(self, split: str = "train", size: int = 32, pairs: bool = False,
                 contrasts: Sequence[str] = ("t1",), paired_every: int = 1) -> None:
        import torch.nn.functional as F
        from nibabel.testing import data_path

        from maekit_mri.nifti import normalise_volume

        if split not in ("train", "test", "all"):
            raise ValueError(f"demo split must be 'train', 'test' or 'all', got {split!r}")
        if not contrasts or set(contrasts) - {"t1", "simulated"}:
            raise ValueError(f"demo contrasts must be among 't1' and 'simulated', got {contrasts!r}")
        path = Path(data_path) / "anatomical.nii"
        volume = normalise_volume(load_volume(path)[0], name=str(path))
        images = []
        for axis in range(3):
            for k, plane in enumerate(np.moveaxis(volume, axis, 0)):
                held_out = k % 5 == 2
                if (plane > 0.05).mean() < 0.1 or (split == "train" and held_out) or (split == "test" and not held_out):
                    continue
                side = max(plane.shape)
                square = np.zeros((side, side), np.float32)
                top, left = (side - plane.shape[0]) // 2, (side - plane.shape[1]) // 2
                square[top:top + plane.shape[0], left:left + plane.shape[1]] = plane
                images.append(F.interpolate(torch.from_numpy(square)[None, None], size=(size, size), mode="bilinear",
                                            align_corners=False)[0].clamp(0, 1))
        t1 = torch.stack(images)
        simulated = torch.from_numpy(np.stack([simulated_contrast(image[0].numpy()) for image in t1]))[:, None]
        self.pairs = pairs
        if pairs:
            self.images, self.targets = t1[::paired_every], simulated[::paired_every]
        else:
            self.images = torch.cat([{"t1": t1, "simulated": simulated}[c] for c in contrasts])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = {"inputs": self.images[index], "label": -1}
        if self.pairs:
            sample.update(target=self.targets[index], subject="anatomical", slice=index)
        return sample
