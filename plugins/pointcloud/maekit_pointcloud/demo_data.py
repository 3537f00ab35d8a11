"""Procedural demo clouds: points sampled on the surfaces of trimesh primitives, deformed.

Eight classes (:data:`SHAPES`): box, sphere, cylinder, cone, torus, capsule, a bent tube
(torus arc) and a two-box "table" (slab on a post). Every sample draws its own proportions (the
primitive's parameters), a random anisotropic stretch, a twist about the vertical axis, a random
rotation (``rotate="yaw"``: upright shapes turned about the vertical axis only), and Gaussian
noise on the surface points; clouds are then centred and scaled into the
unit sphere like every real dataset here. Samples are a pure function of (seed, split, index), so
the train and test splits never share a draw.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit_pointcloud.data import normalise_cloud

__all__ = ["SHAPES", "shape_mesh", "sample_shape", "DemoShapes"]

SHAPES = ("box", "sphere", "cylinder", "cone", "torus", "capsule", "arc", "table")


def shape_mesh(name: str, rng: np.random.Generator) -> Any:
    """A trimesh primitive of class ``name`` with proportions drawn from ``rng``."""
    import trimesh

    u = rng.uniform
    if name == "box":
        return trimesh.creation.box(extents=u(0.6, 1.4, size=3))
    if name == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=u(0.6, 1.0))
    if name == "cylinder":
        return trimesh.creation.cylinder(radius=u(0.3, 0.6), height=u(1.2, 2.0), sections=32)
    if name == "cone":
        return trimesh.creation.cone(radius=u(0.5, 0.9), height=u(1.0, 1.8), sections=32)
    if name == "torus":
        return trimesh.creation.torus(major_radius=u(0.7, 1.0), minor_radius=u(0.15, 0.35))
    if name == "capsule":
        return trimesh.creation.capsule(height=u(0.8, 1.6), radius=u(0.25, 0.45))
    if name == "arc":  # a bent tube: part of a torus
        torus = trimesh.creation.torus(major_radius=1.0, minor_radius=u(0.12, 0.25))
        keep = torus.triangles_center[:, 0] > u(-0.2, 0.3)
        return trimesh.Trimesh(torus.vertices, torus.faces[keep])
    if name == "table":  # a slab on a post
        top = trimesh.creation.box(extents=[u(1.2, 1.8), u(1.0, 1.6), u(0.1, 0.2)])
        post = trimesh.creation.cylinder(radius=u(0.08, 0.15), height=u(0.8, 1.2), sections=16)
        post.apply_translation([0, 0, -0.5 * post.extents[2]])
        return trimesh.util.concatenate([top, post])
    raise ValueError(f"unknown demo shape {name!r}; known: {', '.join(SHAPES)}")


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def sample_shape(name: str, num_points: int, rng: np.random.Generator, noise: float = 0.01,
                 rotate: str = "any") -> np.ndarray:
    """``num_points`` surface points (num_points×3) of a deformed, rotated, noisy ``name`` shape;
    ``rotate``: ``"yaw"`` (about the vertical axis, as upright datasets like ModelNet vary), ``"any"``
    (a uniformly random rotation) or ``"none"``."""
    import trimesh

    mesh = shape_mesh(name, rng)
    points, _ = trimesh.sample.sample_surface(mesh, num_points, seed=int(rng.integers(2**31)))
    points = np.asarray(points) * rng.uniform(0.75, 1.3, size=3)  # anisotropic stretch
    angle = rng.uniform(-0.6, 0.6) * points[:, 2]  # twist about z, growing with height
    cos, sin = np.cos(angle), np.sin(angle)
    points = np.stack([cos * points[:, 0] - sin * points[:, 1], sin * points[:, 0] + cos * points[:, 1],
                       points[:, 2]], axis=1)
    if rotate == "any":
        points = points @ _random_rotation(rng).T
    elif rotate == "yaw":
        yaw = rng.uniform(0, 2 * np.pi)
        points = points @ np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]).T
    elif rotate != "none":
        raise ValueError(f"rotate must be 'yaw', 'any' or 'none', got {rotate!r}")
    points = points + rng.normal(scale=noise, size=points.shape)
    return normalise_cloud(points.astype(np.float32), f"demo {name}")


class DemoShapes(Dataset):
    """``per_class`` deformed clouds of each of :data:`SHAPES` (labels = their order, interleaved),
    ``num_points`` each, made once in memory; ``split`` picks independent draws for train and test."""

    modality = "point_cloud"

    def __init__(self, split: str = "train", per_class: int = 40, num_points: int = 1024, seed: int = 0,
                 shapes: tuple[str, ...] = SHAPES, rotate: str = "any") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown:
            raise ValueError(f"unknown demo shapes {unknown}; known: {', '.join(SHAPES)}")
        self.classes = list(shapes)
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        # classes interleaved (sample i is of class i mod C): any prefix shows every class
        self.labels = np.tile(np.arange(len(shapes)), per_class)
        self.clouds = np.stack([sample_shape(shapes[label], num_points, rng, rotate=rotate) for label in self.labels])

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": torch.from_numpy(self.clouds[index]), "label": int(self.labels[index])}
