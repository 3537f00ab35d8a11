"""Farthest point sampling compiled to machine code with numba: one pass over a cloud per step,
the nearest-distance update and the running maximum fused in a single loop (what open3d's C++
``FarthestPointDownSample`` does, in float32 here).

Exactness against the batched torch path (`maekit_pointcloud.geometry`): the distance is computed
in the same order, ``(dx·dx + dy·dy) + dz·dz`` in float32 without fused multiply-adds (numba
leaves fast-math off by default), the running minimum keeps the old value on equality, and the
maximum keeps the first index among equal distances, as ``torch.argmax``. The points chosen are
therefore identical, tested on random clouds and on clouds full of ties.

Imported only when a CPU cloud is sampled, so listing and importing the plugin never start numba;
``cache=True`` keeps the compiled code beside this file (or in numba's user cache when the package
folder is read-only), so each process after the first skips the ~1 s compile.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def fps_one_cloud(xyz: np.ndarray, count: int, start: int, chosen: np.ndarray) -> None:
    """Write into ``chosen`` (``count`` int64) the FPS indices of one N×3 float32 cloud from ``start``.
    Releases the GIL, so clouds of a batch run in parallel on threads."""
    length = xyz.shape[0]
    nearest = np.full(length, np.inf, dtype=np.float32)
    current = start
    for step in range(count):
        chosen[step] = current
        cx, cy, cz = xyz[current, 0], xyz[current, 1], xyz[current, 2]
        farthest = np.float32(-1.0)
        farthest_index = 0
        for i in range(length):
            dx = xyz[i, 0] - cx
            dy = xyz[i, 1] - cy
            dz = xyz[i, 2] - cz
            distance = dx * dx + dy * dy + dz * dz
            if distance < nearest[i]:
                nearest[i] = distance
            if nearest[i] > farthest:  # strictly greater: the first index among equals wins
                farthest = nearest[i]
                farthest_index = i
        current = farthest_index
