"""Synthesis evaluation: PSNR, SSIM and NMSE per slice, averaged per subject, mean ± std over
subjects (MT-Net's protocol); synthesised slices written back as one NIfTI volume per subject."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["psnr", "nmse", "ssim", "slice_affine", "evaluate_synthesis"]


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """20·log10(data_range / sqrt(MSE))."""
    mse = float(np.mean((pred.astype(np.float64) - target) ** 2))
    return float("inf") if mse == 0 else 20 * np.log10(data_range / np.sqrt(mse))


def nmse(pred: np.ndarray, target: np.ndarray) -> float:
    """‖pred − target‖² / ‖target‖²."""
    energy = float(np.sum(target.astype(np.float64) ** 2))
    return float(np.sum((pred.astype(np.float64) - target) ** 2) / energy) if energy else float("nan")


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """scikit-image's structural similarity with an explicit data range (slices in [0, 1])."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(target.astype(np.float64), pred.astype(np.float64), data_range=data_range))


def slice_affine(affine: np.ndarray, preprocessing: Any, shape: tuple[int, int]) -> np.ndarray:
    """The affine of a stack of preprocessed slices (H×W×S, slice axis last) in the original
    volume's space: the crop offset, the resize's voxel scaling and the first slice."""
    r0, r1, c0, c1 = preprocessing.crop if preprocessing.crop is not None else (0, shape[0], 0, shape[1])
    first = preprocessing.slices[0] if preprocessing.slices is not None else 0
    axes = [a for a in range(3) if a != preprocessing.axis] + [preprocessing.axis]  # our (row, col, slice) → volume axes
    index_to_volume = np.zeros((4, 4))
    index_to_volume[axes[0], 0] = (r1 - r0) / shape[0]
    index_to_volume[axes[1], 1] = (c1 - c0) / shape[1]
    index_to_volume[axes[2], 2] = 1.0
    offset = np.zeros(3)
    offset[axes[0]] = r0 + 0.5 * ((r1 - r0) / shape[0] - 1)  # bilinear, align_corners=False: pixel centres
    offset[axes[1]] = c0 + 0.5 * ((c1 - c0) / shape[1] - 1)
    offset[axes[2]] = first
    index_to_volume[:3, 3], index_to_volume[3, 3] = offset, 1.0
    return affine @ index_to_volume


@torch.no_grad()
def evaluate_synthesis(model: torch.nn.Module, dataset: Dataset, out_dir: str | Path | None = None,
                       batch_size: int = 16) -> dict[str, Any]:
    """Synthesise every slice of ``dataset`` (pairs with "subject" and "slice"); per subject the
    mean PSNR / SSIM / NMSE over its slices, then mean and std over subjects. With ``out_dir``,
    writes ``<subject>_synthesised.nii.gz`` (H×W×S, the source volume's space where known)."""
    import nibabel

    model.eval()
    device = next(model.parameters()).device
    per_subject: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    stacks: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        pred = model.synthesize(batch["inputs"].to(device)).float().cpu().numpy()[:, 0]
        target = batch["target"].numpy()[:, 0]
        for subject, k, p, t in zip(batch["subject"], batch["slice"].tolist(), pred, target):
            scores = per_subject[subject]
            scores["psnr"].append(psnr(p, t))
            scores["ssim"].append(ssim(p, t))
            scores["nmse"].append(nmse(p, t))
            stacks[subject][k] = p
    subjects = {subject: {name: float(np.mean(values)) for name, values in scores.items()}
                for subject, scores in per_subject.items()}
    summary: dict[str, Any] = {"subjects": len(subjects), "slices": sum(len(s) for s in stacks.values())}
    for name in ("psnr", "ssim", "nmse"):
        values = [scores[name] for scores in subjects.values()]
        summary[f"{name}_mean"], summary[f"{name}_std"] = float(np.mean(values)), float(np.std(values))
    summary["per_subject"] = subjects
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        affines = getattr(dataset, "affines", {})
        for subject, slices in stacks.items():
            volume = np.stack([slices[k] for k in sorted(slices)], axis=-1).astype(np.float32)
            source_affine = affines.get((subject, getattr(dataset, "source", None)))
            affine = (slice_affine(source_affine, dataset.preprocessing, volume.shape[:2])
                      if source_affine is not None else np.eye(4))
            nibabel.save(nibabel.Nifti1Image(volume, affine), str(out_dir / f"{subject}_synthesised.nii.gz"))
        summary["written"] = str(out_dir)
    return summary
