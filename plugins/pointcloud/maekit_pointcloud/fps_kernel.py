"""Farthest point sampling compiled to machine code with numba, exact: the same indices as the
batched torch path of `maekit_pointcloud.geometry`, tested.

Two loops. ``sample_linear`` passes over the whole cloud each step, as open3d's C++
``FarthestPointDownSample`` does, but in float32 SIMD code (the update, then an exact argmax as an
integer maximum).
``sample_bucketed`` first orders the points along a Morton curve and cuts them into leaves of
``leaf`` points with tight bounding boxes; a step then skips every leaf whose box is no nearer to
the new point than the leaf's largest nearest-distance — no point in it could move — so after
the first steps most of the cloud is never touched (the bucket idea of QuickFPS, without its
approximation). The skip is exact in float32, not only in real numbers: the box's gap on each axis
is a difference that rounds no larger than the point's own, squares and sums round monotonically,
so the rounded box distance never exceeds a point's rounded distance, and a point is only updated
when its distance is strictly smaller than its nearest.

Shared with the torch path: the distance ``(dx·dx + dy·dy) + dz·dz`` in float32 without fused
multiply-adds (numba leaves fast-math off), the running minimum keeps the old value on equality,
and the farthest point is the lowest index among equal distances, as ``torch.argmax``.

Imported only when a CPU cloud is sampled, so listing and importing the plugin never start numba;
``cache=True`` keeps the compiled code beside this file (or in numba's user cache when the package
folder is read-only), so each process after the first skips the compile. Every function releases
the GIL: the caller runs batches on threads.
"""
from __future__ import annotations

import numba
import numpy as np

LOW_32_BITS = 0xFFFFFFFF


@numba.njit(nogil=True, cache=True)
def sample_linear(xyz: np.ndarray, count: int, start: int, chosen: np.ndarray) -> None:
    """FPS of one N×3 float32 cloud from ``start`` into ``chosen`` (``count`` int64), two passes per
    step that the compiler turns into SIMD code: the nearest-distance update over the coordinates
    held as three rows, then the farthest point as one integer maximum — a non-negative float32's
    bits order like its value, so the key ``bits << 32 | (2³² − 1 − index)`` is largest for the
    largest distance and, among equals, the lowest index (an exact argmax; integers vectorise,
    a float maximum with its index does not)."""
    length = xyz.shape[0]
    x, y, z = xyz[:, 0].copy(), xyz[:, 1].copy(), xyz[:, 2].copy()
    nearest = np.full(length, np.inf, dtype=np.float32)
    bits = nearest.view(np.int32)
    current = start
    for step in range(count):
        chosen[step] = current
        cx, cy, cz = x[current], y[current], z[current]
        for i in range(length):
            dx = x[i] - cx
            dy = y[i] - cy
            dz = z[i] - cz
            distance = dx * dx + dy * dy + dz * dz
            kept = nearest[i]
            nearest[i] = distance if distance < kept else kept
        best = np.int64(-1)
        for i in range(length):
            key = (np.int64(bits[i]) << 32) | (LOW_32_BITS - i)
            best = key if key > best else best
        current = LOW_32_BITS - (best & LOW_32_BITS)


@numba.njit(nogil=True, cache=True)
def morton_order(xyz: np.ndarray) -> np.ndarray:
    """The points' order along a Z-order (Morton) curve of 2¹⁰ cells per axis over their bounding
    box: neighbours in the order are mostly neighbours in space. Only efficiency depends on it."""
    low = np.empty(3)
    scale = np.empty(3)
    for axis in range(3):
        low[axis] = xyz[:, axis].min()
        span = xyz[:, axis].max() - low[axis]
        scale[axis] = 1023.0 / span if span > 0 else 0.0
    codes = np.empty(xyz.shape[0], dtype=np.int64)
    for i in range(xyz.shape[0]):
        code = 0
        for axis in range(3):
            cell = int((xyz[i, axis] - low[axis]) * scale[axis])
            # spread the 10 bits of ``cell`` two apart, so the three axes interleave
            cell = (cell | (cell << 16)) & 0x030000FF
            cell = (cell | (cell << 8)) & 0x0300F00F
            cell = (cell | (cell << 4)) & 0x030C30C3
            cell = (cell | (cell << 2)) & 0x09249249
            code |= cell << axis
        codes[i] = code
    return np.argsort(codes)


@numba.njit(nogil=True, cache=True)
def sample_bucketed(xyz: np.ndarray, count: int, start: int, chosen: np.ndarray, leaf: int) -> None:
    """FPS of one N×3 float32 cloud as ``sample_linear``, skipping leaves that cannot change."""
    length = xyz.shape[0]
    order = morton_order(xyz)
    points = np.empty((length, 3), dtype=np.float32)
    for j in range(length):
        for axis in range(3):
            points[j, axis] = xyz[order[j], axis]
    leaves = (length + leaf - 1) // leaf
    boxes = np.empty((leaves, 6), dtype=np.float32)  # min xyz, max xyz
    leaf_farthest = np.full(leaves, np.inf, dtype=np.float32)  # largest nearest-distance in the leaf
    leaf_index = np.empty(leaves, dtype=np.int64)  # its lowest original index
    for b in range(leaves):
        first, last = b * leaf, min(length, (b + 1) * leaf)
        for axis in range(3):
            boxes[b, axis] = points[first:last, axis].min()
            boxes[b, 3 + axis] = points[first:last, axis].max()
        leaf_index[b] = order[first:last].min()
    nearest = np.full(length, np.inf, dtype=np.float32)
    zero = np.float32(0.0)
    current = start
    for step in range(count):
        chosen[step] = current
        cx, cy, cz = xyz[current, 0], xyz[current, 1], xyz[current, 2]
        for b in range(leaves):
            gx = max(boxes[b, 0] - cx, cx - boxes[b, 3], zero)
            gy = max(boxes[b, 1] - cy, cy - boxes[b, 4], zero)
            gz = max(boxes[b, 2] - cz, cz - boxes[b, 5], zero)
            if gx * gx + gy * gy + gz * gz >= leaf_farthest[b]:
                continue  # every point here is already at least as near to a chosen point
            farthest = np.float32(-1.0)
            farthest_index = 0
            for j in range(b * leaf, min(length, (b + 1) * leaf)):
                dx = points[j, 0] - cx
                dy = points[j, 1] - cy
                dz = points[j, 2] - cz
                distance = dx * dx + dy * dy + dz * dz
                if distance < nearest[j]:
                    nearest[j] = distance
                if nearest[j] > farthest or (nearest[j] == farthest and order[j] < farthest_index):
                    farthest = nearest[j]
                    farthest_index = order[j]
            leaf_farthest[b] = farthest
            leaf_index[b] = farthest_index
        top = 0
        for b in range(1, leaves):
            if leaf_farthest[b] > leaf_farthest[top] or (leaf_farthest[b] == leaf_farthest[top]
                                                         and leaf_index[b] < leaf_index[top]):
                top = b
        current = leaf_index[top]


@numba.njit(nogil=True, cache=True)
def sample_clouds(clouds: np.ndarray, count: int, starts: np.ndarray, chosen: np.ndarray, first: int, last: int,
                  leaf: int) -> None:
    """FPS of clouds ``first..last-1`` of a B×N×3 float32 batch (one task's share) into ``chosen``
    (B×count int64): bucketed with leaves of ``leaf`` points, or linear where ``leaf`` is 0."""
    for cloud in range(first, last):
        if leaf > 0:
            sample_bucketed(clouds[cloud], count, starts[cloud], chosen[cloud], leaf)
        else:
            sample_linear(clouds[cloud], count, starts[cloud], chosen[cloud])
