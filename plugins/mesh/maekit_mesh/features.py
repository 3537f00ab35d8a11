"""The packed per-mesh array every mesh dataset yields, and MeshMAE's per-face features.

A mesh becomes one float32 array of shape (P, 64, :data:`CHANNELS`): P patches of 64 faces, padded
with zero rows to ``max_patches``. It holds geometry only — the features are computed from it by
:func:`face_features` when the mesh is tokenised, so an augmentation moves vertices and the
features follow:

=====================  ================================================================
channels               per face row f of patch p
=====================  ================================================================
``CORNERS`` 0–8        the face's three corners a, b, c (x, y, z each)
``NORMALS`` 9–17       the mesh's vertex normals at a, b, c (unit, trimesh's)
``VERTEX`` 18–20       row f < 45: the patch's f-th distinct vertex (zeros for rows 45–63)
``VALID`` 21           1 for a real patch, 0 for padding
``LABEL`` 22           the face's segmentation label (−1 when there is none, and in padding)
=====================  ================================================================

One tensor per mesh keeps batching, devices and core's evaluation unchanged.
"""
from __future__ import annotations

import numpy as np
import torch

from maekit_mesh.remesh import FACES_PER_PATCH, VERTICES_PER_PATCH, MeshError, RemeshedMesh

__all__ = ["face_features", "pack_mesh", "CORNERS", "NORMALS", "VERTEX", "VALID", "LABEL", "CHANNELS", "NUM_FEATURES"]

CORNERS, NORMALS, VERTEX = slice(0, 9), slice(9, 18), slice(18, 21)
VALID, LABEL, CHANNELS = 21, 22, 23
NUM_FEATURES = 10


def face_features(corners: torch.Tensor, vertex_normals: torch.Tensor) -> torch.Tensor:
    """MeshMAE's 10 features per face, in the reference's order (``model/dataset.py``): area
    (½‖(b − a) × (c − a)‖), unit normal (3), the interior angles sorted ascending (3, radians), the
    dot products of the three vertex normals with the face normal sorted ascending (3).
    ``corners`` …×9 (a, b, c), ``vertex_normals`` …×9 → …×10."""
    a, b, c = corners[..., 0:3], corners[..., 3:6], corners[..., 6:9]
    cross = torch.linalg.cross(b - a, c - a)
    length = cross.norm(dim=-1, keepdim=True)
    normal = cross / length.clamp_min(1e-12)

    def angle(at: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        first, second = u - at, v - at
        cosine = (first * second).sum(-1) / (first.norm(dim=-1) * second.norm(dim=-1)).clamp_min(1e-12)
        return cosine.clamp(-1, 1).acos()

    angles = torch.stack([angle(a, b, c), angle(b, c, a), angle(c, a, b)], dim=-1).sort(dim=-1).values
    dots = torch.stack([(vertex_normals[..., 3 * k: 3 * k + 3] * normal).sum(-1) for k in range(3)], dim=-1)
    return torch.cat([length / 2, normal, angles, dots.sort(dim=-1).values], dim=-1)


def pack_mesh(mesh: RemeshedMesh, max_patches: int = 256, face_labels: np.ndarray | None = None,
              name: str = "mesh") -> np.ndarray:
    """The (max_patches, 64, CHANNELS) array of a remeshed mesh (see the module docstring)."""
    import trimesh

    patches = len(mesh.patches)
    if patches > max_patches:
        raise MeshError(f"{name}: {patches} patches, more than max_patches={max_patches} (simplify to fewer base faces)")
    if mesh.patch_vertices.shape[1:] != (VERTICES_PER_PATCH,):
        raise MeshError(f"{name}: patches have {mesh.patch_vertices.shape[1]} distinct vertices, not "
                        f"{VERTICES_PER_PATCH}: not a triangle subdivided 3 times per patch")
    surface = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    if (surface.area_faces <= 0).any():
        raise MeshError(f"{name}: {int((surface.area_faces <= 0).sum())} faces have zero area after remeshing")
    rows = mesh.patches  # P×64 face indices
    packed = np.zeros((max_patches, FACES_PER_PATCH, CHANNELS), dtype=np.float32)
    packed[:patches, :, CORNERS] = mesh.vertices[mesh.faces][rows].reshape(patches, FACES_PER_PATCH, 9)
    packed[:patches, :, NORMALS] = surface.vertex_normals[mesh.faces][rows].reshape(patches, FACES_PER_PATCH, 9)
    packed[:patches, :VERTICES_PER_PATCH, VERTEX] = mesh.vertices[mesh.patch_vertices]
    packed[:patches, :, VALID] = 1
    packed[..., LABEL] = -1
    if face_labels is not None:
        if len(face_labels) != len(mesh.faces):
            raise MeshError(f"{name}: {len(face_labels)} face labels for {len(mesh.faces)} faces")
        packed[:patches, :, LABEL] = np.asarray(face_labels)[rows]
    return packed
