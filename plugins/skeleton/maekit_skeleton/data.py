"""Skeleton datasets (raw ``.skeleton`` folders, CTR-GCN/MAMP ``.npz``, ST-GCN/MS-G3D ``.npy`` +
label ``.pkl``), the cache command's writer, and the MAMP feeder's augmentation.

Every dataset yields ``{"inputs": (3, T, 25, M) float tensor, "label": action index}`` with
coordinates as the format stores them (the arrays of the preprocessed forms are already centred).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.io.checkpoint import write_arrays, write_json
from maekit_skeleton.ntu import NUM_JOINTS, align_view, centre_on_spine, in_split, parse_ntu_name, read_skeleton, sequence_array

__all__ = ["prepare_sequence", "NTUSkeletons", "NTUNpz", "NTUNpy", "write_ntu_npz", "read_label_pickle",
           "SkeletonAugment", "SkeletonEvalTransform", "valid_crop_resize", "random_rotation"]


def prepare_sequence(path: Path, max_bodies: int = 2, align: bool = False) -> np.ndarray:
    """A raw file → (3, T, 25, max_bodies) float32: parsed, denoised, centred on the spine (and
    view-aligned if asked)."""
    data = centre_on_spine(sequence_array(read_skeleton(path), max_bodies, path))
    return align_view(data) if align else data


def _skeleton_files(root: Path, benchmark: str, split: str, subset: str, ignore: set[str]) -> list[tuple[Path, int]]:
    if subset not in ("ntu60", "ntu120"):
        raise ValueError(f"subset must be 'ntu60' or 'ntu120', got {subset!r}")
    if not root.is_dir():
        raise ValueError(f"skeleton folder {root} does not exist")
    chosen = []
    for path in sorted(root.rglob("*.skeleton")):
        if path.stem in ignore:
            continue
        fields = parse_ntu_name(path)
        if subset == "ntu60" and fields["action"] > 60:
            continue
        if in_split(fields, benchmark, split):
            chosen.append((path, fields["action"] - 1))
    if not chosen:
        raise ValueError(f"no .skeleton file of the {benchmark} {split} split under {root}")
    return chosen


def _ignore_list(path: str | Path | None) -> set[str]:
    """NTU's list of samples with missing skeletons (one name per line, e.g. S001C002P005R002A008)."""
    if path is None:
        return set()
    if not Path(path).is_file():
        raise ValueError(f"ignore list {path} does not exist")
    return {line.strip().removesuffix(".skeleton") for line in Path(path).read_text().splitlines() if line.strip()}


class NTUSkeletons(Dataset):
    """Raw NTU RGB+D ``.skeleton`` files under ``root`` (searched recursively), one split of a
    benchmark (``xsub``, ``xview``, ``xset``); ``subset="ntu60"`` keeps actions 1–60. Files are
    parsed and preprocessed on first use and kept in memory; label = action − 1. For the full
    dataset, write an ``.npz`` once with ``maekit skeleton-preprocess`` and read it with
    :class:`NTUNpz`. ``ignore_list``: NTU's samples-with-missing-skeletons file."""

    modality = "skeleton"

    def __init__(self, root: str | Path, benchmark: str = "xsub", split: str = "train", subset: str = "ntu120",
                 max_bodies: int = 2, align: bool = False, ignore_list: str | Path | None = None) -> None:
        self.root = Path(root)
        self.files = _skeleton_files(self.root, benchmark, split, subset, _ignore_list(ignore_list))
        self.max_bodies, self.align = max_bodies, align
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def array(self, index: int) -> np.ndarray:
        if index not in self._cache:
            self._cache[index] = prepare_sequence(self.files[index][0], self.max_bodies, self.align)
        return self._cache[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": torch.from_numpy(self.array(index)), "label": self.files[index][1]}


def write_ntu_npz(root: str | Path, out: str | Path, benchmark: str = "xsub", subset: str = "ntu60",
                  max_frames: int = 300, align: bool = False, ignore_list: str | Path | None = None,
                  log: Callable[[str], Any] = print) -> dict[str, int]:
    """Preprocess the raw files of both splits into one CTR-GCN/MAMP-layout ``.npz``: ``x_train`` /
    ``x_test`` (N, max_frames, 150: 2 bodies × 25 joints × xyz, zero-padded) and one-hot ``y_train``
    / ``y_test``. A sequence longer than ``max_frames`` is an error (nothing is cut silently)."""
    ignore = _ignore_list(ignore_list)
    classes = 60 if subset == "ntu60" else 120
    arrays: dict[str, np.ndarray] = {}
    counts = {}
    for split in ("train", "test"):
        files = _skeleton_files(Path(root), benchmark, split, subset, ignore)
        x = np.zeros((len(files), max_frames, 2 * NUM_JOINTS * 3), np.float32)
        y = np.zeros((len(files), classes), np.float32)
        for n, (path, label) in enumerate(files):
            data = prepare_sequence(path, 2, align)  # 3 × T × 25 × 2
            if data.shape[1] > max_frames:
                raise ValueError(f"{path}: {data.shape[1]} frames with bodies, more than max_frames={max_frames}")
            x[n, : data.shape[1]] = data.transpose(1, 3, 2, 0).reshape(data.shape[1], -1)
            y[n, label] = 1.0
            if (n + 1) % 1000 == 0:
                log(f"{split}: {n + 1} / {len(files)}")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        counts[split] = len(files)
    out = Path(out) if str(out).endswith(".npz") else Path(f"{out}.npz")  # as numpy.savez names it
    write_arrays(out, **arrays)
    write_json(out.with_suffix(".json"), dict(root=str(root), benchmark=benchmark, subset=subset, max_frames=max_frames,
                                              align=align, **counts))
    return counts


class NTUNpz(Dataset):
    """The CTR-GCN / MAMP ``.npz`` (e.g. ``NTU60_CS.npz``; also what ``maekit skeleton-preprocess``
    writes): ``x_<split>`` (N, T, 150) read as bodies × joints × xyz, ``y_<split>`` one-hot (or
    integer labels)."""

    modality = "skeleton"

    def __init__(self, path: str | Path, split: str = "train") -> None:
        self.path = Path(path)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not self.path.is_file():
            raise ValueError(f"skeleton archive {self.path} does not exist")
        archive = np.load(self.path, allow_pickle=False)
        missing = {f"x_{split}", f"y_{split}"} - set(archive.files)
        if missing:
            raise ValueError(f"{self.path}: missing {sorted(missing)}; expected x_train, y_train, x_test, y_test "
                             f"(CTR-GCN/MAMP layout), found {archive.files}")
        x, y = archive[f"x_{split}"], archive[f"y_{split}"]
        if x.ndim != 3 or x.shape[2] % (3 * NUM_JOINTS):
            raise ValueError(f"{self.path}: x_{split} must be (N, T, bodies·25·3), e.g. (N, 300, 150); got {x.shape}")
        if y.ndim == 2:
            if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(1) == 1):
                raise ValueError(f"{self.path}: y_{split} is 2-D but not one-hot (one 1 per row)")
            y = y.argmax(1)
        if len(y) != len(x):
            raise ValueError(f"{self.path}: x_{split} has {len(x)} samples but y_{split} has {len(y)} labels")
        bodies = x.shape[2] // (3 * NUM_JOINTS)
        # (N, T, M·V·C) → (N, C, T, V, M), MAMP's feeder layout
        self.data = x.reshape(len(x), x.shape[1], bodies, NUM_JOINTS, 3).transpose(0, 4, 1, 3, 2)
        self.labels = y.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": torch.from_numpy(np.ascontiguousarray(self.data[index], dtype=np.float32)),
                "label": int(self.labels[index])}


class _LabelUnpickler(pickle.Unpickler):
    """Reads names and integer labels only: a label file that asks for any other class is refused,
    so opening it can never run code."""

    ALLOWED = {("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"holds a pickled {module}.{name}; only (sample names, labels) lists are read")


def read_label_pickle(path: str | Path) -> tuple[list[str], list[int]]:
    """ST-GCN / MS-G3D label file: ``pickle.dump((sample_names, labels))``, read without running code."""
    try:
        with open(path, "rb") as handle:
            content = _LabelUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"label file {path}: {error}") from None
    if not (isinstance(content, (tuple, list)) and len(content) == 2):
        raise ValueError(f"label file {path}: expected a pair (sample names, labels), got {type(content).__name__}")
    names, labels = content
    try:
        labels = [int(v) for v in labels]
    except (TypeError, ValueError):
        raise ValueError(f"label file {path}: labels must be integers") from None
    return [str(n) for n in names], labels


class NTUNpy(Dataset):
    """The ST-GCN / MS-G3D form: ``<split>_data_joint.npy`` (N, 3, T, 25, M), memory-mapped, and
    ``<split>_label.pkl`` (sample names, labels)."""

    modality = "skeleton"

    def __init__(self, data_path: str | Path, label_path: str | Path) -> None:
        for path in (data_path, label_path):
            if not Path(path).is_file():
                raise ValueError(f"{path} does not exist")
        self.data = np.load(data_path, mmap_mode="r", allow_pickle=False)
        if self.data.ndim != 5 or self.data.shape[1] != 3 or self.data.shape[3] != NUM_JOINTS:
            raise ValueError(f"{data_path}: expected (N, 3, T, 25, M) joint data, got {self.data.shape}")
        self.names, self.labels = read_label_pickle(label_path)
        if len(self.labels) != len(self.data):
            raise ValueError(f"{label_path} has {len(self.labels)} labels but {data_path} has {len(self.data)} samples")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": torch.from_numpy(np.array(self.data[index], dtype=np.float32)), "label": self.labels[index]}


# -- augmentation (MAMP's feeder: valid-frame crop + resize, random rotation) --------------------
def _valid_length(data: torch.Tensor) -> int:
    nonzero = data.abs().sum(dim=(0, 2, 3)) > 0
    if not nonzero.any():
        raise ValueError("a skeleton sequence is all zeros (no valid frame)")
    return int(nonzero.sum())


def valid_crop_resize(data: torch.Tensor, num_frames: int, crop: Sequence[float], min_length: int = 64) -> torch.Tensor:
    """MAMP's ``valid_crop_resize``: crop a share of the valid (non-zero) frames — the centre
    ``crop[0]`` when one value is given, else a random share in [crop[0], crop[1]] (at least
    ``min_length`` frames, at most all) at a random start — and resize it linearly to ``num_frames``."""
    valid = _valid_length(data)
    if len(crop) == 1:
        bias = int((1 - crop[0]) * valid / 2)
        start, length = bias, valid - 2 * bias
    else:
        share = float(torch.rand(()) * (crop[1] - crop[0]) + crop[0])
        length = min(max(int(np.floor(valid * share)), min_length), valid)
        start = int(torch.randint(0, valid - length + 1, ()))
    clip = data[:, start:start + length]
    channels, _, joints, bodies = clip.shape
    rows = clip.permute(0, 2, 3, 1).reshape(1, 1, channels * joints * bodies, length)
    rows = torch.nn.functional.interpolate(rows, size=(channels * joints * bodies, num_frames), mode="bilinear",
                                           align_corners=False)
    return rows.reshape(channels, joints, bodies, num_frames).permute(0, 3, 1, 2).contiguous()


def random_rotation(data: torch.Tensor, theta: float = 0.3) -> torch.Tensor:
    """MAMP's ``random_rot``: one rotation Rz·Ry·Rx per sequence, angles uniform in [−θ, θ]."""
    ax, ay, az = (torch.rand(3) * 2 - 1) * theta
    cx, sx, cy, sy, cz, sz = ax.cos(), ax.sin(), ay.cos(), ay.sin(), az.cos(), az.sin()
    one, zero = torch.ones(()), torch.zeros(())
    rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cx, sx]), torch.stack([zero, -sx, cx])])
    ry = torch.stack([torch.stack([cy, zero, -sy]), torch.stack([zero, one, zero]), torch.stack([sy, zero, cy])])
    rz = torch.stack([torch.stack([cz, sz, zero]), torch.stack([-sz, cz, zero]), torch.stack([zero, zero, one])])
    return torch.einsum("ij,jtvm->itvm", rz @ ry @ rx, data)


def _check_sequence(data: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor) or data.dim() != 4 or data.shape[0] != 3 or data.shape[2] != NUM_JOINTS:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"expected a skeleton sequence (3, T, 25, bodies), got {shape}")
    return data.float()


class SkeletonAugment:
    """Pre-training / fine-tuning augmentation of MAMP: random valid-frame crop (share in
    ``crop``, at least 64 frames) resized to ``num_frames``, then a random 3-D rotation (±0.3 rad)."""

    def __init__(self, num_frames: int = 120, crop: Sequence[float] = (0.5, 1.0), rotation: float = 0.3,
                 min_length: int = 64) -> None:
        if len(crop) != 2 or not 0 < crop[0] <= crop[1] <= 1:
            raise ValueError(f"crop must be (low, high) shares with 0 < low ≤ high ≤ 1, got {crop!r}")
        self.num_frames, self.crop, self.rotation, self.min_length = num_frames, tuple(crop), rotation, min_length

    def __call__(self, data: torch.Tensor) -> torch.Tensor:
        clip = valid_crop_resize(_check_sequence(data), self.num_frames, self.crop, self.min_length)
        return random_rotation(clip, self.rotation) if self.rotation else clip


class SkeletonEvalTransform:
    """Evaluation: the centre ``crop`` (0.95) of the valid frames resized to ``num_frames``."""

    mean = std = None  # coordinates are not normalised

    def __init__(self, num_frames: int = 120, crop: float = 0.95) -> None:
        if not 0 < crop <= 1:
            raise ValueError(f"crop must be a share in (0, 1], got {crop!r}")
        self.num_frames, self.crop = num_frames, crop

    def __call__(self, data: torch.Tensor) -> torch.Tensor:
        return valid_crop_resize(_check_sequence(data), self.num_frames, (self.crop,))
