"""Any triangle mesh → MeshMAE's input: a base mesh subdivided three times, with explicit patches.

MeshMAE (Liang et al.) reads meshes remeshed by MAPS (SubdivNet): a base mesh of 96–192 faces
subdivided 3 times (1 → 4 faces per level), so every base face owns 4³ = 64 faces, and it recovers
a patch from SubdivNet's face *order* (patch j = faces j, j + P, …). Users ask how to do this for
their own meshes; here it is explicit:

1. load and repair (merge duplicate vertices, drop degenerate and duplicate faces, fix winding);
   refuse what cannot be used — NaN vertices, too few faces, edges shared by more than two faces;
2. simplify to ``base_faces`` faces (quadric decimation, fast-simplification);
3. subdivide each base face 3 times by edge midpoints, recording which base face every new face
   came from, and move every vertex to the nearest point of the *original* surface;
4. the patches are then known: patch p = the 64 faces of base face p, in a fixed order whose
   45 distinct vertices are listed per patch.

Already-remeshed MAPS meshes (Manifold40-MAPS, HumanBody/COSEG-MAPS) are read with their own
faces and the face-order patches (:func:`maps_patches`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MeshError", "RemeshedMesh", "load_mesh", "repair", "simplify", "subdivide_patches", "closest_points",
           "remesh", "maps_patches", "FACES_PER_PATCH", "VERTICES_PER_PATCH"]

FACES_PER_PATCH = 64  # 4 ** 3
VERTICES_PER_PATCH = 45  # (2³ + 1)(2³ + 2) / 2 distinct vertices of a triangle subdivided 3 times


class MeshError(ValueError):
    """A mesh that cannot be turned into patches; the message names the file and the problem."""


@dataclass
class RemeshedMesh:
    """Vertices V×3, faces F×3 (F = 64·P) and ``patches`` P×64 face indices (patch p = the faces of
    base face p); ``patch_vertices`` P×45 vertex indices, each patch's distinct vertices;
    ``source_faces`` (remeshed meshes) the input mesh's face nearest each new face (an index into
    the faces as loaded, before repair), to carry per-face labels across."""

    vertices: np.ndarray
    faces: np.ndarray
    patches: np.ndarray
    patch_vertices: np.ndarray
    source_faces: np.ndarray | None = None


def load_mesh(path: str | Path, process: bool = True):
    """A trimesh of ``path`` (.obj/.off/.ply/.stl/…), one mesh even if the file holds a scene."""
    import trimesh

    path = Path(path)
    try:
        loaded = trimesh.load(str(path), force="mesh", process=process)
    except Exception as error:  # trimesh raises many types for a bad file
        raise MeshError(f"{path}: cannot read mesh ({error})") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise MeshError(f"{path}: no triangles in the file")
    if not np.isfinite(loaded.vertices).all():
        raise MeshError(f"{path}: {int((~np.isfinite(loaded.vertices)).any(1).sum())} vertices are NaN or infinite")
    return loaded


def repair(mesh, name: str, min_faces: int = 4) -> tuple[Any, np.ndarray]:
    """Merge duplicate vertices, drop degenerate (zero-area) and duplicate faces and unused
    vertices, make the winding consistent; refuse non-manifold edges (shared by > 2 faces) and
    meshes left with fewer than ``min_faces`` faces. Returns the repaired mesh and, per face of it,
    its index in the input (per-face labels follow through it)."""
    import trimesh

    mesh = mesh.copy()
    mesh.merge_vertices()
    keep = mesh.area_faces > 1e-12 * max(mesh.area, 1e-30)
    unique = np.zeros(len(mesh.faces), dtype=bool)
    unique[trimesh.grouping.unique_rows(np.sort(mesh.faces, axis=1))[0]] = True
    kept = np.flatnonzero(keep & unique)
    mesh.update_faces(keep & unique)
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) < min_faces:
        raise MeshError(f"{name}: {len(mesh.faces)} usable faces after removing degenerate ones; at least "
                        f"{min_faces} needed")
    edges = np.sort(mesh.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    if (counts > 2).any():
        raise MeshError(f"{name}: non-manifold: {int((counts > 2).sum())} edges are shared by more than two faces "
                        f"(repair it, e.g. with ManifoldPlus, first)")
    trimesh.repair.fix_winding(mesh)
    return mesh, kept


def simplify(mesh, base_faces: int, name: str):
    """Quadric decimation to about ``base_faces`` faces (a mesh already that small is kept)."""
    if len(mesh.faces) <= base_faces:
        return mesh
    try:
        simple = mesh.simplify_quadric_decimation(face_count=base_faces)
    except ImportError as error:
        raise MeshError(f"{name}: simplification needs fast-simplification ({error}); pip install fast-simplification") from None
    if len(simple.faces) < 4:
        raise MeshError(f"{name}: simplification to {base_faces} faces left {len(simple.faces)}")
    if len(simple.faces) > 1.5 * base_faces:
        raise MeshError(f"{name}: quadric decimation stopped at {len(simple.faces)} faces, far above the "
                        f"{base_faces} asked (collapses would fold the surface); simplify it yourself first")
    return simple


def subdivide_patches(vertices: np.ndarray, faces: np.ndarray, levels: int = 3) -> RemeshedMesh:
    """Midpoint subdivision ``levels`` times (each face → its 3 corner triangles and the middle
    one, in that order), keeping every face's base face: patch p lists the 4**levels faces of base
    face p in a fixed order, and its distinct vertices."""
    vertices = [tuple(v) for v in np.asarray(vertices, dtype=np.float64)]
    index_of: dict[tuple[int, int], int] = {}

    def midpoint(a: int, b: int) -> int:
        key = (a, b) if a < b else (b, a)
        if key not in index_of:
            index_of[key] = len(vertices)
            vertices.append(tuple((np.asarray(vertices[a]) + np.asarray(vertices[b])) / 2))
        return index_of[key]

    current = [[tuple(face)] for face in np.asarray(faces, dtype=np.int64)]  # per base face, its faces
    for _ in range(levels):
        current = [[child for a, b, c in patch
                    for child in _split(a, b, c, midpoint(a, b), midpoint(b, c), midpoint(c, a))]
                   for patch in current]
    all_faces = np.array([face for patch in current for face in patch], dtype=np.int64)
    count = 4 ** levels
    patches = np.arange(len(all_faces)).reshape(len(current), count)
    patch_vertices = np.stack([np.unique(all_faces[p].reshape(-1)) for p in patches])
    return RemeshedMesh(np.array(vertices), all_faces, patches, patch_vertices)


def _split(a: int, b: int, c: int, ab: int, bc: int, ca: int) -> tuple[tuple[int, int, int], ...]:
    return (a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)


def closest_points(mesh, points: np.ndarray, candidates: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The nearest point of ``mesh``'s surface to each of ``points`` and the triangle it lies on:
    exact closest points on the ``candidates`` triangles whose centroids are nearest (a k-d tree),
    the best of them."""
    from scipy.spatial import cKDTree

    triangles = np.asarray(mesh.triangles, dtype=np.float64)
    k = min(candidates, len(triangles))
    _, nearest = cKDTree(triangles.mean(axis=1)).query(points, k=k)
    nearest = nearest.reshape(len(points), k)
    found = _closest_on_triangles(np.repeat(points, k, axis=0), triangles[nearest.reshape(-1)]).reshape(len(points), k, 3)
    best = ((found - points[:, None]) ** 2).sum(-1).argmin(axis=1)
    rows = np.arange(len(points))
    return found[rows, best], nearest[rows, best]


def _closest_on_triangles(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Closest point on each triangle (N×3×3) to each point (N×3), by the Voronoi regions of its
    vertices, edges and face (Ericson, *Real-Time Collision Detection*, 5.1.5), vectorised."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = va + vb + vc
        v_face, w_face = vb / denominator, vc / denominator
        t_ab, t_ac = d1 / (d1 - d3), d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    result = a + ab * np.nan_to_num(v_face)[:, None] + ac * np.nan_to_num(w_face)[:, None]  # inside the face
    regions = [  # later rules win: edges, then vertices
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + (c - b) * np.nan_to_num(t_bc)[:, None]),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * np.nan_to_num(t_ac)[:, None]),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * np.nan_to_num(t_ab)[:, None]),
        ((d6 >= 0) & (d5 <= d6), c), ((d3 >= 0) & (d4 <= d3), b), ((d1 <= 0) & (d2 <= 0), a),
    ]
    for inside, point in regions:
        result = np.where(inside[:, None], point, result)
    return result


def remesh(path_or_mesh, base_faces: int = 96, levels: int = 3, name: str | None = None) -> RemeshedMesh:
    """Any triangle mesh → repaired, simplified to ``base_faces``, subdivided ``levels`` times with
    every vertex projected onto the original surface; patches explicit."""
    name = name or str(path_or_mesh)
    original = load_mesh(path_or_mesh) if isinstance(path_or_mesh, (str, Path)) else path_or_mesh
    original, kept = repair(original, name)
    base = simplify(original, base_faces, name)
    result = subdivide_patches(base.vertices, base.faces, levels)
    # every vertex onto the original surface: the new ones, and the base ones decimation placed off
    # it — except where that would fold a face flat (a coarse base over a thin part): those faces'
    # vertices stay where subdivision put them
    flat = result.vertices.copy()
    result.vertices = closest_points(original, result.vertices)[0]
    for _ in range(3):
        corners = result.vertices[result.faces]
        area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
        folded = area <= 1e-9 * max(float(area.max()), 1e-30)
        if not folded.any():
            break
        restore = np.unique(result.faces[folded])
        result.vertices[restore] = flat[restore]
    result.source_faces = kept[closest_points(original, result.vertices[result.faces].mean(axis=1))[1]]
    return result


def maps_patches(num_faces: int, name: str = "mesh") -> np.ndarray:
    """SubdivNet/MAPS face order: P = F / 64 patches, patch j = faces j, j + P, …, j + 63·P."""
    if num_faces % FACES_PER_PATCH:
        raise MeshError(f"{name}: {num_faces} faces is not a multiple of {FACES_PER_PATCH}; not a MAPS mesh "
                        f"subdivided 3 times (remesh it instead)")
    return np.arange(num_faces).reshape(FACES_PER_PATCH, -1).T
