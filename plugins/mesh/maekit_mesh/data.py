"""Mesh datasets: class folders (Manifold40-MAPS, ShapeNet-style pre-training folders, your own
meshes) and segmentation pairs (HumanBody / COSEG: ``.obj`` + ``.json`` with per-face
``sub_labels``), each mesh remeshed (or read as MAPS) and packed (:mod:`maekit_mesh.features`);
the preprocessing cache; MeshMAE's augmentation.

Layouts of a mesh: ``"maps"`` — an already-remeshed MAPS mesh, patches from SubdivNet's face order;
``"remesh"`` — any triangle mesh, remeshed explicitly (:func:`maekit_mesh.remesh.remesh`);
``"auto"`` — MAPS when the face count is a multiple of 64 and every face-order patch has the 45
distinct vertices of a 3-times subdivided triangle, else remeshed.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.io.checkpoint import write_arrays, write_json
from maekit_mesh.features import CORNERS, NORMALS, VALID, VERTEX, pack_mesh
from maekit_mesh.remesh import VERTICES_PER_PATCH, MeshError, RemeshedMesh, load_mesh, maps_patches, remesh

__all__ = ["MESH_SUFFIXES", "prepare_mesh", "MeshFolder", "MeshSegmentation", "MeshAugment", "write_cache",
           "read_face_labels"]

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")  # glTF scenes are joined into one mesh
LAYOUTS = ("auto", "maps", "remesh")


def _maps_mesh(mesh, name: str) -> RemeshedMesh | None:
    """The mesh read with its own faces as a MAPS mesh, or None when its face order is not MAPS's."""
    faces = np.asarray(mesh.faces)
    if len(faces) % 64:
        return None
    patches = maps_patches(len(faces), name)
    distinct = [np.unique(faces[p]) for p in patches]
    if any(len(d) != VERTICES_PER_PATCH for d in distinct):
        return None
    return RemeshedMesh(np.asarray(mesh.vertices, dtype=np.float64), faces, patches, np.stack(distinct))


def normalise_mesh(mesh, name: str):
    """Centred on its bounding box's centre and scaled into the unit sphere (a CAD part in
    millimetres and a scan in metres become alike; MeshMAE's data are so normalised)."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    centred = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    radius = float(np.linalg.norm(centred, axis=1).max())
    if not radius > 0:
        raise MeshError(f"{name}: every vertex is at one point; the mesh has no extent")
    mesh.vertices = centred / radius
    return mesh


def prepare_mesh(path: str | Path, layout: str = "auto", base_faces: int = 96, max_patches: int = 256,
                 face_labels: np.ndarray | None = None, normalise: bool = True) -> np.ndarray:
    """One mesh file → its packed array. Per-face labels (of the file's faces) are carried over to
    remeshed faces through the nearest original face. ``normalise``: a mesh that is remeshed is first
    centred and scaled into the unit sphere (:func:`normalise_mesh`); a MAPS mesh is read as it is,
    as the reference reads Manifold40-MAPS. Any failure of the remeshing is a :class:`MeshError`
    naming the file."""
    try:
        return _prepare_mesh(path, layout, base_faces, max_patches, face_labels, normalise)
    except (MeshError, ValueError):
        raise
    except Exception as error:  # a numerical corner of remeshing (e.g. subdivision of a degenerate patch)
        raise MeshError(f"{path}: remeshing failed at base_faces={base_faces} ({type(error).__name__}: {error}); "
                        f"try another base_faces, or skip it (skip_invalid / --skip-invalid)") from None


def _prepare_mesh(path: str | Path, layout: str, base_faces: int, max_patches: int,
                  face_labels: np.ndarray | None, normalise: bool) -> np.ndarray:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    name = str(path)
    mesh = load_mesh(path, process=False)  # MAPS face order must survive loading
    if face_labels is not None and len(face_labels) != len(mesh.faces):
        raise MeshError(f"{name}: {len(face_labels)} face labels for a mesh of {len(mesh.faces)} faces")
    remeshed = _maps_mesh(mesh, name) if layout != "remesh" else None
    if remeshed is None:
        if layout == "maps":
            raise MeshError(f"{name}: not a MAPS mesh (face count {len(mesh.faces)}, or face-order patches without "
                            f"{VERTICES_PER_PATCH} distinct vertices); use layout='remesh'")
        remeshed = remesh(normalise_mesh(mesh, name) if normalise else mesh, base_faces, name=name)
        if face_labels is not None:
            face_labels = np.asarray(face_labels)[remeshed.source_faces]
    return pack_mesh(remeshed, max_patches, face_labels, name)


def read_face_labels(path: str | Path) -> np.ndarray:
    """0-based per-face labels from a MeshMAE / SubdivNet segmentation ``.json`` (``sub_labels``, 1-based)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise MeshError(f"{path}: cannot read segmentation labels ({error})") from None
    labels = record.get("sub_labels") if isinstance(record, dict) else None
    if not isinstance(labels, list) or not labels:
        raise MeshError(f"{path}: expected a JSON object with a non-empty 'sub_labels' list (1-based per-face labels)")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 1:
        raise MeshError(f"{path}: 'sub_labels' must be integers ≥ 1 (1-based), got min {labels.min()!r}")
    return labels.astype(np.int64) - 1


class _Meshes(Dataset):
    """Shared by the mesh datasets: files, per-file labels, packing on first use (kept in memory)
    or from a cache written by ``maekit mesh-preprocess``."""

    def __init__(self, files: list[Path], root: Path, layout: str, base_faces: int, max_patches: int,
                 cache: str | Path | None, skip_invalid: bool, normalise: bool = True) -> None:
        self.root, self.files = root, files
        self.settings = {"layout": layout, "base_faces": base_faces, "max_patches": max_patches, "normalise": normalise}
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if not files:
            raise ValueError(f"{root}: no mesh files ({', '.join(MESH_SUFFIXES)}) found")
        self._packed: dict[int, np.ndarray] = {}
        self.skipped: list[tuple[str, str]] = []
        self.cache = None
        if cache is not None:  # the cache's manifest says what preprocessing skipped: honour it
            self.cache, skipped_there = _open_cache(cache, self.settings)
            for path in files:
                reason = skipped_there.get(str(path.relative_to(root)))
                if reason is not None:
                    self.skipped.append((str(path), reason))
            left_out = {Path(name) for name, _ in self.skipped}
            self.files = [path for path in files if path not in left_out]
        elif skip_invalid:  # process everything now; drop (and list) what cannot be used
            kept = []
            for index, path in enumerate(files):
                try:
                    self._packed[len(kept)] = self._prepare(index)
                    kept.append(path)
                except MeshError as error:
                    self.skipped.append((str(path), str(error)))
                    logging.getLogger("maekit").warning("skipped a mesh (skip_invalid): %s", error)
            self.files = kept
        if not self.files:
            raise ValueError(f"{root}: every mesh was skipped ({len(self.skipped)}): first {self.skipped[0]}")

    def face_labels(self, index: int) -> np.ndarray | None:
        return None

    def label(self, index: int) -> int:
        return -1

    def _prepare(self, index: int) -> np.ndarray:
        path = self.files[index]
        if self.cache is not None:
            return self.cache(path, self.root)
        return prepare_mesh(path, self.settings["layout"], self.settings["base_faces"], self.settings["max_patches"],
                            self.face_labels(index), self.settings["normalise"])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in self._packed:
            self._packed[index] = self._prepare(index)
        return {"inputs": torch.from_numpy(self._packed[index]), "label": self.label(index)}


def _mesh_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())


class MeshFolder(_Meshes):
    """Meshes in class folders, labels by sorted folder name (never by substring of a path):
    Manifold40-MAPS ``root/<class>/<split>/<shape>-<k>.obj`` (``split`` "train" / "test"), or
    ``root/<class>/**/<file>`` with ``split=None`` (ShapeNet-style pre-training folders, your own
    meshes). ``shape_id`` groups a shape's remeshed variants (``<shape>-<k>``) for voting."""

    modality = "mesh"

    def __init__(self, root: str | Path, split: str | None = "train", classes: Sequence[str] | None = None,
                 layout: str = "auto", base_faces: int = 96, max_patches: int = 256, cache: str | Path | None = None,
                 skip_invalid: bool = False, normalise: bool = True) -> None:
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"{root}: mesh folder not found")
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
        if classes is not None:
            missing = [c for c in classes if c not in folders]
            if missing:
                raise ValueError(f"{root}: class folders {missing} not found; present: {folders}")
            folders = list(classes)
        self.classes = folders
        self._labels: dict[Path, int] = {}
        if not folders:  # a flat folder of meshes: unlabelled, for pre-training
            self._labels = {path: -1 for path in _mesh_files(root)}
        for label, name in enumerate(folders):
            folder = root / name / split if split else root / name
            for path in _mesh_files(folder) if folder.is_dir() else []:
                self._labels[path] = label
        super().__init__(sorted(self._labels), root, layout, base_faces, max_patches, cache, skip_invalid, normalise)

    def label(self, index: int) -> int:
        return self._labels[self.files[index]]

    def shape_id(self, index: int) -> str:
        path = self.files[index]
        return f"{self.classes[self.label(index)]}/{path.stem.split('-')[0]}"


class MeshSegmentation(_Meshes):
    """HumanBody / COSEG-style segmentation: ``root/<split>/**/<name>.obj`` each with
    ``<name>.json`` holding 1-based per-face ``sub_labels``; the packed array carries the 0-based
    label of every face (−1 for padding); the sample label is −1."""

    modality = "mesh"

    def __init__(self, root: str | Path, split: str = "train", layout: str = "auto", base_faces: int = 96,
                 max_patches: int = 256, cache: str | Path | None = None, skip_invalid: bool = False,
                 normalise: bool = True) -> None:
        root = Path(root)
        folder = root / split
        if not folder.is_dir():
            raise ValueError(f"{folder}: segmentation split folder not found")
        files = _mesh_files(folder)
        missing = [p for p in files if not p.with_suffix(".json").is_file()]
        if missing:
            raise ValueError(f"{missing[0]}: no label file {missing[0].with_suffix('.json').name} beside it "
                             f"({len(missing)} meshes lack one)")
        super().__init__(files, root, layout, base_faces, max_patches, cache, skip_invalid, normalise)

    def face_labels(self, index: int) -> np.ndarray:
        return read_face_labels(self.files[index].with_suffix(".json"))


# -- the preprocessing cache ---------------------------------------------------------------------
def _open_cache(cache: str | Path, settings: dict) -> tuple[Callable[[Path, Path], np.ndarray], dict[str, str]]:
    """The reader of a cache written with ``settings``, and what its preprocessing skipped
    ({relative path: reason})."""
    cache = Path(cache)
    manifest = cache / "manifest.json"
    if not manifest.is_file():
        raise ValueError(f"{cache}: not a mesh cache (no manifest.json); write one with maekit mesh-preprocess")
    written = json.loads(manifest.read_text())
    if written.get("settings") != settings:
        raise ValueError(f"{cache}: the cache was written with {written.get('settings')}, the dataset asks for "
                         f"{settings}; preprocess again or change the dataset's settings")

    def read(path: Path, root: Path) -> np.ndarray:
        stored = cache / path.relative_to(root).with_suffix(".npz")
        if not stored.is_file():
            raise ValueError(f"{stored}: {path} is not in the cache (preprocess the folder again)")
        return np.load(stored)["packed"]

    return read, {entry["file"]: entry["error"] for entry in written.get("skipped", [])}


def write_cache(root: str | Path, out: str | Path, layout: str = "auto", base_faces: int = 96, max_patches: int = 256,
                skip_invalid: bool = False, log: Callable[[str], Any] = print, normalise: bool = True) -> dict[str, Any]:
    """Pack every mesh under ``root`` (labels from a beside-lying ``.json`` when there is one) into
    ``out/<relative path>.npz`` + ``manifest.json``; a mesh that cannot be used stops the run with
    its error, or with ``skip_invalid`` is listed in the manifest's ``skipped`` (the datasets leave
    those out). The cache is written in a folder beside ``out`` and renamed into place at the end:
    a crash leaves no half cache behind."""
    root, out = Path(root), Path(out)
    settings = {"layout": layout, "base_faces": base_faces, "max_patches": max_patches, "normalise": normalise}
    files = _mesh_files(root)
    if not files:
        raise ValueError(f"{root}: no mesh files ({', '.join(MESH_SUFFIXES)}) found")
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(f"{out}: exists and is not a mesh cache (no manifest.json); give a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        written, skipped = [], []
        for path in files:
            labels_file = path.with_suffix(".json")
            try:
                labels = read_face_labels(labels_file) if labels_file.is_file() else None
                packed = prepare_mesh(path, layout, base_faces, max_patches, labels, normalise)
            except MeshError as error:
                if not skip_invalid:
                    raise
                skipped.append({"file": str(path.relative_to(root)), "error": str(error)})
                log(f"skipped {path}: {error}")
                continue
            write_arrays(staging / path.relative_to(root).with_suffix(".npz"), compressed=True, packed=packed)
            written.append(str(path.relative_to(root)))
        write_json(staging / "manifest.json", {"settings": settings, "files": written, "skipped": skipped}, indent=1)
        if out.exists():  # a previous cache is replaced only once the new one is complete
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"written": len(written), "skipped": len(skipped)}


# -- augmentation ----------------------------------------------------------------------------------
class MeshAugment:
    """MeshMAE's augmentation on packed meshes: per-axis scale ~ N(1, ``scale_std``) and, with
    ``deform`` > 0, a free-form deformation over the mesh's bounding box whose (0, 0, 0) and
    (1, 1, 1) control points move by U(0, ``deform``) of the box per axis (the reference's pygem
    FFD with a 2×2×2 lattice). Vertex normals follow the map's inverse transpose; face features are
    recomputed from the moved geometry when tokenised. Random draws come from torch's generator,
    which maekit seeds per sample."""

    def __init__(self, scale_std: float = 0.1, deform: float = 0.0) -> None:
        self.scale_std, self.deform = scale_std, deform

    def __call__(self, packed: torch.Tensor) -> torch.Tensor:
        if self.scale_std == 0 and self.deform == 0:
            return packed  # the evaluation transform: meshes as stored
        packed = packed.clone()
        valid = packed[:, 0, VALID] > 0.5
        corners = packed[valid][..., CORNERS].reshape(-1, 3)
        low, high = corners.min(0).values, corners.max(0).values
        extent = (high - low).clamp_min(1e-9)
        like = dict(device=packed.device, dtype=packed.dtype)
        scale = 1 + self.scale_std * torch.randn(3).to(**like)  # drawn on the CPU generator maekit seeds
        moves = torch.rand(2, 3).to(**like) * self.deform * extent if self.deform > 0 else torch.zeros(2, 3, **like)

        def transform(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Moved points and the map's Jacobian at them (…×3×3)."""
            u = ((points - low) / extent).clamp(0, 1)
            first = (1 - u).prod(-1, keepdim=True)  # weight of control point (0, 0, 0)
            last = u.prod(-1, keepdim=True)  # of (1, 1, 1)
            moved = (points + first * moves[0] + last * moves[1]) * scale
            # d first / d u_i = −∏_{j≠i}(1 − u_j); d last / d u_i = ∏_{j≠i} u_j; d u_i / d x_i = 1 / extent_i
            others = lambda v: torch.stack([v[..., 1] * v[..., 2], v[..., 0] * v[..., 2], v[..., 0] * v[..., 1]], -1)
            gradient_first, gradient_last = -others(1 - u) / extent, others(u) / extent
            jacobian = torch.eye(3, **like) + moves[0][:, None] * gradient_first[..., None, :] + moves[1][:, None] * gradient_last[..., None, :]
            return moved, scale[:, None] * jacobian

        rows = packed[valid]
        positions = rows[..., CORNERS].reshape(*rows.shape[:2], 3, 3)
        moved, jacobian = transform(positions)
        normals = rows[..., NORMALS].reshape(*rows.shape[:2], 3, 3)
        normals = torch.linalg.solve(jacobian.transpose(-1, -2), normals.unsqueeze(-1)).squeeze(-1)
        rows[..., CORNERS] = moved.reshape(*rows.shape[:2], 9)
        rows[..., NORMALS] = torch.nn.functional.normalize(normals, dim=-1).reshape(*rows.shape[:2], 9)
        vertices = rows[:, :VERTICES_PER_PATCH, VERTEX]
        rows[:, :VERTICES_PER_PATCH, VERTEX] = transform(vertices)[0]
        packed[valid] = rows
        return packed
