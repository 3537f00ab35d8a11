"""Point-cloud data in the field's on-disk formats, validated, normalised as the references do.

Every dataset yields ``{"inputs": P×3 float tensor, "label": int}`` with the cloud centred on its
centroid and scaled into the unit sphere (Point-MAE's ``pc_norm``); the transforms then sample
``num_points`` (randomly for training, by FPS or the first points for evaluation) and augment.

Formats (Point-BERT / Point-MAE / MAE3D / DGCNN layouts):

- ShapeNet-55: ``<root>/shapenet_pc/<synset>-<model>.npy`` (8192×3) with ``<root>/train.txt`` /
  ``test.txt`` listing the file names; label = index of the synset among the sorted synsets.
- MAE3D's archive: an ``.npz`` whose key ``data`` holds (clouds, points, 3).
- ModelNet40 resampled: ``<root>/<class>/<class>_0001.txt`` (comma-separated x, y, z, nx, ny, nz
  per line) with ``modelnet40_shape_names.txt`` and ``modelnet40_{train,test}.txt`` (``airplane_0001``);
  ``modelnet10_*`` lists alike.
- DGCNN's ``modelnet40_ply_hdf5_2048/ply_data_{train,test}*.h5`` and ScanObjectNN's
  ``{training,test}_objectdataset*.h5``: ``data`` (N, 2048, ≥3), ``label`` (N,) or (N, 1).
- Any cloud file a user has: ``.ply`` / ``.pcd`` / ``.xyz`` / ``.xyzn`` / ``.pts`` (open3d),
  ``.npy``, ``.txt`` / ``.csv`` (numbers per line) — in class folders (labels by sorted folder name)
  or a flat folder (label −1).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.data.skipping import check_on_error, first_readable
from maekit_pointcloud.headers import check_cloud_file

__all__ = ["read_cloud", "check_cloud", "normalise_cloud", "PointCloudFolder", "ShapeNet55", "PointCloudArchive",
           "ModelNet40", "PointCloudH5", "ScanObjectNN", "PointCloudAugment", "PointCloudEvalTransform",
           "SCANOBJECTNN_VARIANTS", "OPEN3D_SUFFIXES"]

OPEN3D_SUFFIXES = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
CLOUD_SUFFIXES = OPEN3D_SUFFIXES + (".npy", ".txt", ".csv")
# ScanObjectNN's h5 files per variant (folder, file stem suffix)
SCANOBJECTNN_VARIANTS = {
    "OBJ_BG": ("main_split", ""),
    "OBJ_ONLY": ("main_split_nobg", ""),
    "PB_T25": ("main_split", "_augmented25_norot"),
    "PB_T25_R": ("main_split", "_augmented25rot"),
    "PB_T50_R": ("main_split", "_augmentedrot"),
    "PB_T50_RS": ("main_split", "_augmentedrot_scale75"),
}


def check_cloud(points: Any, name: str, min_points: int = 1) -> np.ndarray:
    """``points`` as a float32 P×3 array (extra columns — normals, colours — dropped), or a clear
    error naming ``name``: not P×C with C ≥ 3, fewer than ``min_points`` points, NaN/inf values."""
    array = np.asarray(points)
    if array.ndim != 2 or array.shape[1] < 3:
        raise ValueError(f"{name}: expected points as P×3 (or P×C, C ≥ 3: xyz first), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name}: point values must be numbers, got dtype {array.dtype}")
    if len(array) < min_points:
        raise ValueError(f"{name}: {len(array)} points, fewer than the {min_points} needed")
    xyz = array[:, :3].astype(np.float32)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} points have NaN or infinite coordinates (first at row "
                         f"{int(np.flatnonzero(bad)[0])})")
    return xyz


def normalise_cloud(points: np.ndarray, name: str = "cloud") -> np.ndarray:
    """Point-MAE's ``pc_norm``: subtract the centroid, divide by the largest distance from it."""
    centred = points - points.mean(axis=0, keepdims=True)
    radius = float(np.sqrt((centred ** 2).sum(axis=1)).max())
    if radius <= 0:
        raise ValueError(f"{name}: all {len(points)} points coincide; the cloud has no extent to normalise")
    return (centred / radius).astype(np.float32)


def read_cloud(path: str | Path, drop_invalid: bool | None = None) -> np.ndarray:
    """The xyz of one cloud file (P×3 float32), checked. open3d reads .ply/.pcd/.xyz/.pts; numpy
    reads .npy and text (comma- or space-separated numbers per line, e.g. ModelNet's .txt).

    PLY and PCD headers are held to the data first: a truncated file is an error naming it (open3d
    would pad it with zeros). Points with NaN/inf coordinates: ``drop_invalid=None`` (default) drops
    them from an organized PCD (a sensor's H×W grid, where NaN is a pixel with no return; the count
    is logged) and refuses them elsewhere; True drops them from any file, False refuses them always."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CLOUD_SUFFIXES:
        raise ValueError(f"{path}: not a point-cloud file this reader knows ({', '.join(CLOUD_SUFFIXES)})")
    header = None
    try:
        header = check_cloud_file(path)
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".txt", ".csv"):
            text = path.read_text()
            array = np.loadtxt(text.replace(",", " ").splitlines(), dtype=np.float64, ndmin=2)
        else:
            import open3d

            array = np.asarray(open3d.io.read_point_cloud(str(path)).points)  # unreadable: no points
    except OSError as error:
        raise ValueError(f"{path}: cannot read point cloud ({error})") from None
    except ValueError as error:
        raise ValueError(str(error) if str(path) in str(error) else f"{path}: cannot read point cloud ({error})") from None
    if array.size == 0:
        declared = f"; its header declares {header.points} points with fields {header.fields}" if header else ""
        raise ValueError(f"{path}: the cloud is empty (no points read){declared}")
    drop = (header is not None and header.organized) if drop_invalid is None else drop_invalid
    if drop:
        finite = np.isfinite(array[:, :3]).all(axis=1)
        if not finite.all():
            logging.getLogger("maekit").info("%s: dropped %d of %d points with NaN/inf coordinates%s", path,
                                             int((~finite).sum()), len(array),
                                             " (an organized cloud: no return)" if header and header.organized else "")
            array = array[finite]
        if len(array) == 0:
            raise ValueError(f"{path}: every point has NaN or infinite coordinates")
    return check_cloud(array, str(path))


class _CloudDataset(Dataset):
    """Shared by every reader: keeps (source, label) pairs and loads, checks and normalises.

    ``on_error="raise"`` names a bad cloud in the error; ``"skip"`` serves the next good one in its
    place, logs each bad file once with the reason and lists it in ``skipped_files``."""

    classes: list[str]

    def __init__(self, min_points: int = 1, normalise: bool = True, on_error: str = "raise") -> None:
        self.min_points, self.normalise, self.on_error = min_points, normalise, check_on_error(on_error)
        self.skipped_files: dict[str, str] = {}

    def load(self, index: int) -> tuple[np.ndarray, str]:
        raise NotImplementedError

    def label(self, index: int) -> int:
        raise NotImplementedError

    def source_name(self, index: int) -> str:
        """What ``skipped_files`` calls sample ``index`` (its file, where there is one)."""
        return f"sample {index}"

    def sample(self, index: int) -> dict[str, Any]:
        points, name = self.load(index)
        points = check_cloud(points, name, self.min_points)
        if self.normalise:
            points = normalise_cloud(points, name)
        return {"inputs": torch.from_numpy(points), "label": self.label(index)}

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = first_readable(index, len(self), self.sample, self.source_name, self.on_error, self.skipped_files,
                                "point cloud")
        if sample is None:
            raise ValueError("no readable point cloud left")
        return sample


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"{path}: split list not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _check_split(split: str, allowed: Sequence[str] = ("train", "test")) -> str:
    if split not in allowed:
        raise ValueError(f"split must be one of {', '.join(allowed)}, got {split!r}")
    return split


class PointCloudFolder(_CloudDataset):
    """Cloud files under ``root``: in class folders (``root/<class>/<file>``, labels by sorted folder
    name) or flat (label −1). ``classes`` restricts and orders the classes."""

    modality = "point_cloud"

    def __init__(self, root: str | Path, classes: Sequence[str] | None = None, min_points: int = 1,
                 normalise: bool = True, on_error: str = "raise", drop_invalid: bool | None = None) -> None:
        super().__init__(min_points, normalise, on_error)
        self.drop_invalid = drop_invalid
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: point-cloud folder not found")
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if classes is not None:
            missing = [c for c in classes if c not in folders]
            if missing:
                raise ValueError(f"{self.root}: class folders {missing} not found; present: {folders}")
            folders = list(classes)
        self.classes = folders
        if folders:
            self.samples = [(path, label) for label, name in enumerate(folders)
                            for path in sorted((self.root / name).iterdir()) if path.suffix.lower() in CLOUD_SUFFIXES]
        else:
            self.samples = [(path, -1) for path in sorted(self.root.iterdir()) if path.suffix.lower() in CLOUD_SUFFIXES]
        if not self.samples:
            raise ValueError(f"{self.root}: no point-cloud files ({', '.join(CLOUD_SUFFIXES)})")

    def __len__(self) -> int:
        return len(self.samples)

    def source_name(self, index: int) -> str:
        return str(self.samples[index][0])

    def load(self, index: int) -> tuple[np.ndarray, str]:
        path = self.samples[index][0]
        return read_cloud(path, self.drop_invalid), str(path)

    def label(self, index: int) -> int:
        return self.samples[index][1]


class ShapeNet55(_CloudDataset):
    """ShapeNet-55 in the Point-BERT layout: ``root/shapenet_pc/*.npy`` (8192×3 each) and the split
    lists ``root/train.txt`` / ``root/test.txt``; ``pc_path`` points elsewhere for the clouds
    (Point-MAE keeps them beside the lists' folder). Labels: the synset's index among the sorted
    synsets of the split list."""

    modality = "point_cloud"

    def __init__(self, root: str | Path, split: str = "train", pc_path: str | Path | None = None,
                 min_points: int = 1, normalise: bool = True) -> None:
        super().__init__(min_points, normalise)
        self.root = Path(root)
        self.pc_path = Path(pc_path) if pc_path is not None else self.root / "shapenet_pc"
        self.files = _read_list(self.root / f"{_check_split(split)}.txt")
        bad = [name for name in self.files if "-" not in name or not name.endswith(".npy")]
        if bad:
            raise ValueError(f"{self.root / f'{split}.txt'}: expected lines '<synset>-<model>.npy', got {bad[0]!r}")
        self.classes = sorted({name.split("-")[0] for name in self.files})
        self._label = {synset: i for i, synset in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[np.ndarray, str]:
        path = self.pc_path / self.files[index]
        if not path.is_file():
            raise ValueError(f"{path}: listed in the split but not found")
        return read_cloud(path), str(path)

    def label(self, index: int) -> int:
        return self._label[self.files[index].split("-")[0]]


class PointCloudArchive(_CloudDataset):
    """Clouds stacked in one ``.npz`` (MAE3D's pre-training archive: key ``data``, (N, P, 3)) or
    ``.npy`` (N, P, ≥3); ``labels_key`` names labels in the same ``.npz`` when it has them."""

    modality = "point_cloud"

    def __init__(self, path: str | Path, key: str = "data", labels_key: str | None = None, min_points: int = 1,
                 normalise: bool = True) -> None:
        super().__init__(min_points, normalise)
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: point-cloud archive not found")
        try:
            archive = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"{self.path}: cannot read ({error})") from None
        if isinstance(archive, np.ndarray):
            self.clouds, labels = archive, None
        else:
            if key not in archive.files:
                raise ValueError(f"{self.path}: no key {key!r} (keys: {archive.files})")
            self.clouds = archive[key]
            if labels_key is not None and labels_key not in archive.files:
                raise ValueError(f"{self.path}: no labels key {labels_key!r} (keys: {archive.files})")
            labels = archive[labels_key] if labels_key else None
        if self.clouds.ndim != 3 or self.clouds.shape[-1] < 3:
            raise ValueError(f"{self.path}: expected clouds as (N, P, 3), got shape {self.clouds.shape}")
        self.labels = _labels(labels, len(self.clouds), str(self.path))
        self.classes = []

    def __len__(self) -> int:
        return len(self.clouds)

    def load(self, index: int) -> tuple[np.ndarray, str]:
        return self.clouds[index], f"{self.path}[{index}]"

    def label(self, index: int) -> int:
        return int(self.labels[index])


def _labels(labels: Any, count: int, name: str) -> np.ndarray:
    if labels is None:
        return np.full(count, -1, dtype=np.int64)
    labels = np.asarray(labels).reshape(len(labels), -1)
    if labels.shape[1] != 1 or len(labels) != count:
        raise ValueError(f"{name}: expected {count} integer labels (N or N×1), got shape {labels.shape}")
    return labels[:, 0].astype(np.int64)


class ModelNet40(_CloudDataset):
    """ModelNet40 (or ModelNet10) ``modelnet40_normal_resampled``: ``root/<class>/<id>.txt``
    (comma-separated xyz + normals, 10,000 points) listed in ``modelnet{40,10}_{split}.txt``; class
    names and order from ``modelnet{N}_shape_names.txt``. A shape id's class is its name without the
    trailing ``_<number>`` (``night_stand_0001`` → ``night_stand``), checked against the class list."""

    modality = "point_cloud"

    def __init__(self, root: str | Path, split: str = "train", num_classes: int = 40, min_points: int = 1,
                 normalise: bool = True) -> None:
        super().__init__(min_points, normalise)
        if num_classes not in (10, 40):
            raise ValueError(f"num_classes must be 10 or 40, got {num_classes!r}")
        self.root = Path(root)
        self.classes = _read_list(self.root / f"modelnet{num_classes}_shape_names.txt")
        label_of = {name: i for i, name in enumerate(self.classes)}
        list_file = self.root / f"modelnet{num_classes}_{_check_split(split)}.txt"
        self.samples = []
        for shape in _read_list(list_file):
            stem, _, number = shape.rpartition("_")
            if not number.isdigit() or stem not in label_of:
                raise ValueError(f"{list_file}: {shape!r} is not '<class>_<number>' with a class from "
                                 f"modelnet{num_classes}_shape_names.txt")
            self.samples.append((self.root / stem / f"{shape}.txt", label_of[stem]))

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, str]:
        path = self.samples[index][0]
        if not path.is_file():
            raise ValueError(f"{path}: listed in the split but not found")
        return read_cloud(path), str(path)

    def label(self, index: int) -> int:
        return self.samples[index][1]


def _read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            missing = [key for key in ("data", "label") if key not in handle]
            if missing:
                raise ValueError(f"no dataset {missing[0]!r} (has: {sorted(handle.keys())})")
            data, labels = handle["data"][:], handle["label"][:]
    except OSError as error:
        raise ValueError(f"{path}: cannot read HDF5 ({error})") from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if data.ndim != 3 or data.shape[-1] < 3:
        raise ValueError(f"{path}: 'data' should be (N, points, ≥3), got shape {data.shape}")
    return data, _labels(labels, len(data), str(path))


def _matching(root: Path, name: str) -> list[Path]:
    """The files ``name`` names: an absolute path, or a glob pattern under ``root``."""
    path = Path(name)
    if path.is_absolute():
        return [path] if path.is_file() else []
    return list(root.glob(name))


class PointCloudH5(_CloudDataset):
    """Clouds from HDF5 files with ``data`` (N, P, ≥3) and ``label`` (N,) or (N, 1): DGCNN's
    ``modelnet40_ply_hdf5_2048`` (``files`` = ``ply_data_train*.h5``) and the like. ``files`` is a
    file, a list of files, or a glob pattern under ``root``."""

    modality = "point_cloud"

    def __init__(self, root: str | Path, files: str | Sequence[str], min_points: int = 1, normalise: bool = True,
                 classes: Sequence[str] | None = None) -> None:
        super().__init__(min_points, normalise)
        self.root = Path(root)
        names = [files] if isinstance(files, str) else list(files)
        paths = sorted({p for name in names for p in _matching(self.root, name)})
        if not paths:
            raise ValueError(f"{self.root}: no HDF5 file matches {names}")
        parts = [_read_h5(p) for p in paths]
        self.paths = paths
        self.data = np.concatenate([d for d, _ in parts])
        self.labels = np.concatenate([lab for _, lab in parts])
        self.origin = [(p, i) for p, (d, _) in zip(paths, parts) for i in range(len(d))]
        self.classes = list(classes or [])

    def __len__(self) -> int:
        return len(self.data)

    def load(self, index: int) -> tuple[np.ndarray, str]:
        path, row = self.origin[index]
        return self.data[index], f"{path}[{row}]"

    def label(self, index: int) -> int:
        return int(self.labels[index])


class ScanObjectNN(PointCloudH5):
    """ScanObjectNN's h5 files: ``root/<folder>/{training,test}_objectdataset<suffix>.h5`` per
    variant (:data:`SCANOBJECTNN_VARIANTS`; PB_T50_RS, the hardest, is the default), 15 classes.
    Point-MAE reads these clouds as they are (no re-normalisation): ``normalise`` defaults off."""

    modality = "point_cloud"

    def __init__(self, root: str | Path, split: str = "train", variant: str = "PB_T50_RS", min_points: int = 1,
                 normalise: bool = False) -> None:
        if variant not in SCANOBJECTNN_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(SCANOBJECTNN_VARIANTS)}, got {variant!r}")
        folder, suffix = SCANOBJECTNN_VARIANTS[variant]
        stem = "training" if _check_split(split) == "train" else "test"
        path = Path(root) / folder / f"{stem}_objectdataset{suffix}.h5"
        if not path.is_file():
            raise ValueError(f"{path}: ScanObjectNN {variant} {split} file not found")
        super().__init__(path.parent, path.name, min_points, normalise)


# -- transforms ----------------------------------------------------------------------------------
def _sample(points: torch.Tensor, num_points: int | None, how: str) -> torch.Tensor:
    if num_points is None:
        return points
    if len(points) < num_points:
        raise ValueError(f"a cloud has {len(points)} points, fewer than num_points={num_points}; set the dataset's "
                         f"min_points={num_points} to have such files named (and skipped with on_error='skip')")
    if how == "random":
        return points[torch.randperm(len(points))[:num_points]]
    if how == "fps":
        from maekit_pointcloud.geometry import farthest_point_sample

        return points[farthest_point_sample(points[None], num_points)[0]]
    return points[:num_points]


class PointCloudAugment:
    """Pre-training augmentation (MAE3D / Point-MAE's ``PointcloudScaleAndTranslate``): sample
    ``num_points`` at random, scale each axis by U(scale), translate each axis by U(±translate),
    shuffle the points. Random draws come from torch's generator, which maekit seeds per sample."""

    def __init__(self, num_points: int | None = 2048, scale: Sequence[float] = (2 / 3, 3 / 2),
                 translate: float = 0.2, shuffle: bool = True) -> None:
        self.num_points, self.scale, self.translate, self.shuffle = num_points, tuple(scale), translate, shuffle

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        points = _sample(points, self.num_points, "random")
        low, high = self.scale
        scale = torch.empty(3).uniform_(low, high)
        shift = torch.empty(3).uniform_(-self.translate, self.translate)
        points = points * scale + shift
        if self.shuffle:
            points = points[torch.randperm(len(points))]
        return points


class PointCloudEvalTransform:
    """Deterministic evaluation input: ``num_points`` by farthest point sampling from the first
    point (Point-MAE's ModelNet evaluation), or the first ``num_points`` (``sampling="first"``)."""

    def __init__(self, num_points: int | None = 2048, sampling: str = "fps") -> None:
        if sampling not in ("fps", "first"):
            raise ValueError(f"sampling must be 'fps' or 'first', got {sampling!r}")
        self.num_points, self.sampling = num_points, sampling

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        if self.num_points is not None and self.sampling == "fps" and len(points) > 32 * self.num_points:
            # a raw scan of 250k points: FPS over all of them takes seconds per cloud. A uniform subset of
            # 8·num_points first (seeded by the cloud's size: the same every time; the first point kept, as
            # FPS starts there) keeps its coverage. Clouds of the benchmarks (≤ 10k points) are untouched.
            generator = torch.Generator().manual_seed(len(points))
            others = torch.randperm(len(points) - 1, generator=generator)[: 8 * self.num_points - 1] + 1
            points = points[torch.cat([torch.zeros(1, dtype=torch.long), others.sort().values])]
        return _sample(points, self.num_points, self.sampling)
