"""NIfTI volumes → normalised slices, as the Edge-MAE / MT-Net preprocessing does.

Per volume: the foreground is every voxel that differs from the corner voxel's value; foreground
intensities are clipped to its 0.2–99.8 percentiles and divided by the maximum, so they lie in
[0, 1], and the background stays 0 (MT-Net's preprocessing); then an in-plane crop (BraTS: [10:210, 25:225] → 200×200), a range of axial slices
(BraTS: 50–109, 60 per subject) and a resize of each slice (256×256, bilinear).

Subjects are found in two layouts: BraTS (``root/<subject>/<subject>_t1.nii.gz``, ``_t2``,
``_t1ce``, ``_flair``) and IXI (a flat folder of ``IXI002-Guys-0828-T1.nii.gz``, ``-T2``, ``-PD``).
Data are split by subject, never by slice (:func:`split_subjects`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Preprocessing", "load_volume", "load_subject", "normalise_volume", "volume_slices", "find_subjects",
           "split_subjects", "BRATS_CONTRASTS", "IXI_CONTRASTS", "BRATS_2023_NAMES"]

BRATS_CONTRASTS = ("t1", "t2", "t1ce", "flair")
IXI_CONTRASTS = ("T1", "T2", "PD")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Preprocessing:
    """How volumes become slices. ``crop``: (row0, row1, col0, col1) of the in-plane axes, or None;
    ``slices``: [first, last) along the slice axis, or None for all; ``size``: output side."""

    crop: tuple[int, int, int, int] | None = (10, 210, 25, 225)
    slices: tuple[int, int] | None = (50, 110)
    size: int = 256
    axis: int = 2
    percentiles: tuple[float, float] = (0.2, 99.8)


def load_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D volume (float32) and its affine; a 4-D file with one volume is squeezed. Errors name
    the file: unreadable, not 3-D, NaN/inf voxels."""
    import nibabel

    path = Path(path)
    try:
        image = nibabel.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as error:  # nibabel raises many types for a bad file
        raise ValueError(f"{path}: cannot read NIfTI volume ({error})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D volume, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: {int((~np.isfinite(data)).sum())} voxels are NaN or infinite")
    return data, np.asarray(image.affine)


def normalise_volume(volume: np.ndarray, percentiles: tuple[float, float] = (0.2, 99.8), name: str = "volume") -> np.ndarray:
    """As MT-Net's preprocessing: inside the brain (foreground: voxels unlike the corner voxel) clip
    to the foreground's percentiles and divide by the maximum; the background stays 0. Values in
    [0, 1]."""
    foreground = volume != volume.flat[0]
    if not foreground.any():
        raise ValueError(f"{name}: empty foreground (every voxel equals the corner value {volume.flat[0]})")
    low, high = np.percentile(volume[foreground], percentiles)
    clipped = np.clip(volume[foreground], low, high)
    peak = float(clipped.max())
    if peak <= 0:
        raise ValueError(f"{name}: no positive intensity after clipping to [{low}, {high}]")
    normalised = np.zeros(volume.shape, dtype=np.float32)
    normalised[foreground] = (clipped / peak).clip(0, 1)
    return normalised


def volume_slices(volume: np.ndarray, preprocessing: Preprocessing = Preprocessing(), name: str = "volume") -> np.ndarray:
    """Normalised, cropped, resized slices S×size×size of one volume."""
    import torch
    import torch.nn.functional as F

    volume = np.moveaxis(normalise_volume(volume, preprocessing.percentiles, name), preprocessing.axis, 0)
    if preprocessing.crop is not None:
        r0, r1, c0, c1 = preprocessing.crop
        if r1 > volume.shape[1] or c1 > volume.shape[2]:
            raise ValueError(f"{name}: crop {preprocessing.crop} exceeds the in-plane size {volume.shape[1:]}")
        volume = volume[:, r0:r1, c0:c1]
    if preprocessing.slices is not None:
        first, last = preprocessing.slices
        if last > volume.shape[0]:
            raise ValueError(f"{name}: slices {first}–{last - 1} asked for, the volume has {volume.shape[0]}")
        volume = volume[first:last]
    slices = torch.from_numpy(np.ascontiguousarray(volume))[:, None]
    resized = F.interpolate(slices, size=(preprocessing.size, preprocessing.size), mode="bilinear", align_corners=False)
    return resized[:, 0].clamp(0, 1).numpy()


def _nifti_stem(path: Path) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


# BraTS 2023 (BraTS-GLI-00001-000-t1n.nii.gz) names its contrasts otherwise than 2020-2021
BRATS_2023_NAMES = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair"}
EXPECTED_NAMES = {
    "brats": "one folder per subject holding <subject>_<contrast>.nii.gz with contrast t1, t2, t1ce, flair "
             "(BraTS 2020-2021), or <subject>-<contrast>.nii.gz with t1n, t1c, t2w, t2f (BraTS 2023)",
    "ixi": "a flat folder of <subject>-<contrast>.nii.gz, e.g. IXI002-Guys-0828-T1.nii.gz, -T2, -PD",
}


def find_subjects(root: str | Path, layout: str, contrasts: Sequence[str],
                  skipped: dict[str, str] | None = None) -> dict[str, dict[str, Path]]:
    """``{subject: {contrast: path}}`` for every subject that has all ``contrasts``.

    ``layout="brats"``: one folder per subject holding ``<anything>_<contrast>.nii[.gz]`` (BraTS
    2020-2021: t1, t2, t1ce, flair) or ``<anything>-<contrast>.nii[.gz]`` (BraTS 2023: t1n, t1c, t2w,
    t2f, read as t1, t1ce, t2, flair); ``"ixi"``: a flat folder of ``<subject>-<contrast>.nii[.gz]``.
    A subject missing a contrast is an error naming it — or, when a ``skipped`` dict is given, is
    recorded there with the reason (nothing is dropped silently)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"MRI data folder {root} does not exist or is not a folder")
    if layout not in ("brats", "ixi"):
        raise ValueError(f"layout must be 'brats' or 'ixi', got {layout!r}")
    found: dict[str, dict[str, Path]] = {}
    if layout == "brats":
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in folder.iterdir():
                stem = _nifti_stem(path)
                match = stem and re.fullmatch(r".*[_-]([A-Za-z0-9]+)", stem)
                if match:
                    contrast = match.group(1).lower()
                    found.setdefault(folder.name, {})[BRATS_2023_NAMES.get(contrast, contrast)] = path
        contrasts = [c.lower() for c in contrasts]
    else:
        for path in sorted(root.iterdir()):
            stem = _nifti_stem(path)
            match = stem and re.fullmatch(r"(.+)-([A-Za-z0-9]+)", stem)
            if match:
                found.setdefault(match.group(1), {})[match.group(2)] = path
    if not found:
        raise ValueError(f"{root}: no NIfTI files in the {layout} layout (expected {EXPECTED_NAMES[layout]})")
    subjects = {}
    for subject, files in sorted(found.items()):
        missing = [c for c in contrasts if c not in files]
        if missing:
            reason = f"{root}: subject {subject} has no {', '.join(missing)} volume (found {', '.join(sorted(files))})"
            if skipped is None:
                raise ValueError(reason)
            skipped[subject] = reason
            continue
        subjects[subject] = {c: files[c] for c in contrasts}
    return subjects


def load_subject(files: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{contrast: (volume, affine)}`` of one subject; contrasts on different voxel grids are an
    error naming both files and shapes (their slices would not correspond)."""
    volumes = {contrast: load_volume(path) for contrast, path in files.items()}
    (first, (reference, _)), *others = volumes.items()
    for contrast, (data, _) in others:
        if data.shape != reference.shape:
            raise ValueError(f"{files[first]} has shape {reference.shape} but {files[contrast]} has {data.shape}: "
                             f"a subject's contrasts must share one voxel grid (co-register them first)")
    return volumes


def split_subjects(subjects: Sequence[str], split: str, train_fraction: float = 0.8, seed: int = 0) -> list[str]:
    """The subjects of ``split`` ("train", "test" or "all"): a seeded shuffle of the sorted subject
    ids, the first ``train_fraction`` for training. Slices of one subject never straddle splits."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    ordered = sorted(subjects)
    if split == "all":
        return ordered
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    cut = int(round(len(shuffled) * train_fraction))
    return sorted(shuffled[:cut] if split == "train" else shuffled[cut:])
