"""Procedural demo meshes: trimesh primitives, deformed, remeshed into patches like any user mesh.

Six classes (:data:`SHAPES`): box, sphere, cylinder, cone, torus, capsule. Every sample draws its
proportions, an anisotropic stretch, a twist about the vertical axis and a turn about it, then
goes through the real pipeline (:func:`maekit_mesh.remesh.remesh`: repair, simplify to
``base_faces``, subdivide three times, project onto the deformed surface). Samples are a pure
function of (seed, split, index); classes are interleaved so any prefix shows every class.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit_mesh.features import pack_mesh
from maekit_mesh.remesh import MeshError, remesh

__all__ = ["SHAPES", "demo_mesh", "DemoMeshes"]

SHAPES = ("box", "sphere", "cylinder", "cone", "torus", "capsule")


def demo_mesh(name: str, rng: np.random.Generator) -> Any:
    """A deformed, turned trimesh primitive of class ``name``, centred and scaled into the unit sphere."""
    import trimesh

    u = rng.uniform
    if name == "box":
        mesh = trimesh.creation.box(extents=u(0.6, 1.4, size=3))
        mesh = mesh.subdivide().subdivide()  # vertices to twist
    elif name == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=u(0.6, 1.0))
    elif name == "cylinder":
        mesh = trimesh.creation.cylinder(radius=u(0.3, 0.6), height=u(1.2, 2.0), sections=24).subdivide()
    elif name == "cone":
        mesh = trimesh.creation.cone(radius=u(0.5, 0.9), height=u(1.0, 1.8), sections=24).subdivide()
    elif name == "torus":
        mesh = trimesh.creation.torus(major_radius=u(0.7, 1.0), minor_radius=u(0.2, 0.35), major_sections=24,
                                      minor_sections=12)
    elif name == "capsule":
        mesh = trimesh.creation.capsule(height=u(0.8, 1.6), radius=u(0.25, 0.45), count=[16, 16])
    else:
        raise ValueError(f"unknown demo shape {name!r}; known: {', '.join(SHAPES)}")
    vertices = np.asarray(mesh.vertices) * u(0.75, 1.3, size=3)
    angle = u(-0.5, 0.5) * vertices[:, 2]
    cos, sin = np.cos(angle), np.sin(angle)
    vertices = np.stack([cos * vertices[:, 0] - sin * vertices[:, 1], sin * vertices[:, 0] + cos * vertices[:, 1],
                         vertices[:, 2]], axis=1)
    yaw = u(0, 2 * np.pi)  # upright, turned about the vertical axis (as ModelNet / Manifold40 shapes vary)
    vertices = vertices @ np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]).T
    vertices = vertices - vertices.mean(0)
    return trimesh.Trimesh(vertices / np.linalg.norm(vertices, axis=1).max(), mesh.faces, process=True)


class DemoMeshes(Dataset):
    """``per_class`` remeshed demo meshes of each of :data:`SHAPES`, ``base_faces`` patches of 64
    faces each, packed (``max_patches`` = ``base_faces``: simplification may stop a few faces short,
    so meshes carry padding too)."""

    modality = "mesh"

    def __init__(self, split: str = "train", per_class: int = 24, base_faces: int = 32, seed: int = 0,
                 shapes: tuple[str, ...] = SHAPES) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown:
            raise ValueError(f"unknown demo shapes {unknown}; known: {', '.join(SHAPES)}")
        self.classes = list(shapes)
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        self.labels = np.tile(np.arange(len(shapes)), per_class)
        self.meshes = np.stack([self._make(shapes[label], rng, base_faces) for label in self.labels])

    @staticmethod
    def _make(shape: str, rng: np.random.Generator, base_faces: int) -> np.ndarray:
        """A packed demo mesh; a draw that decimation cannot bring down to ``base_faces`` (a thin,
        strongly twisted shape) is replaced by the next draw, still a function of the seed."""
        name = f"demo {shape}"
        for _ in range(10):
            try:
                return pack_mesh(remesh(demo_mesh(shape, rng), base_faces, name=name), base_faces, name=name)
            except MeshError:
                continue
        raise MeshError(f"{name}: ten draws in a row could not be remeshed to {base_faces} patches")

    def __len__(self) -> int:
        return len(self.meshes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": torch.from_numpy(self.meshes[index]), "label": int(self.labels[index])}
