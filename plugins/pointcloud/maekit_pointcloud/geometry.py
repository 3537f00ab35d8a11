"""Point-cloud geometry in plain, batched torch (CPU and GPU alike, no CUDA extension to build):
farthest point sampling, k nearest neighbours and the Chamfer distance.

The reference implementations depend on pointnet2_ops (FPS), KNN_CUDA and a Chamfer CUDA
extension, the install failure most reported in their trackers. These run wherever torch runs;
on CPU tensors FPS runs numba-compiled loops instead (`fps_kernel`), which choose the
same points as the torch path and ran 2–5× faster than open3d's C++ FPS where measured.
Every pairwise step is chunked over the query points so that one chunk holds at most ``budget``
distances (2²⁴ floats, 64 MiB, by default), whatever the batch and cloud sizes.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from maekit.ops import gather

__all__ = ["farthest_point_sample", "gather_points", "knn", "nearest_neighbour", "chamfer_distance"]

DEFAULT_BUDGET = 2**24


def _check_cloud(points: torch.Tensor, name: str = "points") -> None:
    if not isinstance(points, torch.Tensor) or points.dim() != 3 or points.shape[-1] < 1:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"{name} must be a batch of clouds B×N×C, got {shape}")


def gather_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``points`` B×N×C at ``index`` B×M (or B×M×k) → B×M×C (or B×M×k×C)."""
    return gather(points, index.reshape(index.shape[0], -1)).reshape(*index.shape, points.shape[-1])


def _query_chunks(query: torch.Tensor, points: torch.Tensor, budget: int) -> tuple[torch.Tensor, ...]:
    """The queries split so that each chunk's distance matrix holds at most ``budget`` values."""
    rows = max(1, budget // max(1, query.shape[0] * points.shape[1]))
    return query.split(rows, dim=1)


FPS_BACKENDS = ("auto", "torch", "compiled")
# From these many samples of clouds of these many points the bucketed loop beats the SIMD pass
# (measured on one cloud size each side: 16 384 → 2048 41 vs 63 ms, 100 000 → 1024 33 vs 42 ms,
# 250 000 → 1024 89 vs 188 ms; but 8192 → 1024 33 vs 24 ms, 32 768 → 512 19 vs 13 ms)
BUCKETED_SAMPLES, BUCKETED_POINTS = 1024, 16384
LEAF_POINTS = 64  # points per leaf of the bucketed loop


def farthest_point_sample(points: torch.Tensor, count: int, start: torch.Tensor | int | None = 0,
                          backend: str = "auto") -> torch.Tensor:
    """Indices B×count of iterative farthest point sampling (as pointnet2_ops' ``furthest_point_sample``):
    begin at ``start`` (index 0 as the reference; a B-vector, negative counting from the end, or None
    for a random start), then repeatedly take the point farthest from everything chosen so far,
    the lowest index among equals. Exact; coordinates must be finite.

    ``backend``: ``"torch"`` runs batched torch ops on the clouds' device (the GPU path, inside the
    training graph); ``"compiled"`` runs numba-compiled loops on CPU threads (`fps_kernel`: a SIMD
    pass per step, or for many samples of large clouds a bucketed loop that skips the parts of the
    cloud that cannot change; 2–5× faster than open3d's C++ FPS in the measured cases, see
    ``benchmarks/pointcloud_ops.py``);
    ``"auto"`` takes the compiled loops for CPU tensors (torch while ``torch.compile`` traces) and
    torch elsewhere. On CPU every path chooses the same indices (tested; CUDA's reductions may sum
    a distance's three terms in another order, so a near-tie could go the other way there)."""
    _check_cloud(points)
    batch, length, _ = points.shape
    if not isinstance(count, int) or not 0 < count <= length:
        raise ValueError(f"cannot sample {count!r} points by FPS from clouds of {length} points")
    if backend not in FPS_BACKENDS:
        raise ValueError(f"FPS backend must be one of {', '.join(FPS_BACKENDS)}, got {backend!r}")
    xyz = points[..., :3].detach().float()
    if not torch.isfinite(xyz).all():
        raise ValueError("FPS needs finite coordinates: drop the NaN or infinite points first")
    if start is None:
        first = torch.randint(length, (batch,), device=points.device)
    else:
        first = torch.as_tensor(start, device=points.device)
        if first.is_floating_point() or first.dim() > 1 or first.numel() not in (1, batch):
            raise ValueError(f"FPS start must be an int or {batch} ints (one per cloud), got {start!r}")
        first = first.long().expand(batch).clone()
        if ((first < -length) | (first >= length)).any():
            raise ValueError(f"FPS start {first.tolist()} is outside clouds of {length} points")
        first = first % length
    compiled = backend == "compiled" or (backend == "auto" and points.device.type == "cpu"
                                         and not torch.compiler.is_compiling())
    if compiled:
        return _fps_compiled(xyz.cpu(), count, first.cpu()).to(points.device)
    return _fps_torch(xyz, count, first)


def _fps_torch(xyz: torch.Tensor, count: int, current: torch.Tensor) -> torch.Tensor:
    batch, length, _ = xyz.shape
    chosen = torch.empty(batch, count, dtype=torch.long, device=xyz.device)
    nearest = torch.full((batch, length), float("inf"), device=xyz.device)
    rows = torch.arange(batch, device=xyz.device)
    for step in range(count):
        chosen[:, step] = current
        centre = xyz[rows, current].unsqueeze(1)  # B×1×3
        nearest = torch.minimum(nearest, (xyz - centre).pow(2).sum(-1))
        current = nearest.argmax(dim=1)  # ties: the lowest index, as the CUDA kernel's scan
    return chosen


# One pool per process, sized to torch's thread count; a forked child (a data-loader worker)
# inherits the pool object but not its threads, so it forgets the pool and makes its own.
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` workers (torch's thread count), made on first use."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != threads:
            _pool = (threads, ThreadPoolExecutor(threads, thread_name_prefix="maekit-fps"))
        return _pool[1]


def _fps_compiled(xyz: torch.Tensor, count: int, first: torch.Tensor) -> torch.Tensor:
    """The numba loops, the batch split into one run of clouds per thread, on up to torch's thread
    count (1 inside data-loader workers). Small jobs (< 2²² distance updates, about a millisecond)
    run inline: handing them to threads cost more than it saved (measured). Clouds of fewer than
    3 channels get zero channels, which add exact zeros to every distance."""
    try:
        from maekit_pointcloud.fps_kernel import sample_clouds
    except ImportError as error:  # a declared dependency, absent after e.g. `pip install --no-deps`
        raise ImportError(f"FPS on CPU compiles its loops with numba, which failed to import ({error}): "
                          "pip install numba, or pass backend='torch'") from error

    if xyz.shape[-1] < 3:
        xyz = torch.nn.functional.pad(xyz, (0, 3 - xyz.shape[-1]))
    clouds = xyz.contiguous().numpy()
    batch, length = clouds.shape[:2]
    chosen = np.empty((batch, count), dtype=np.int64)
    starts = first.numpy().astype(np.int64)
    leaf = LEAF_POINTS if count >= BUCKETED_SAMPLES and length >= BUCKETED_POINTS else 0
    threads = torch.get_num_threads()
    if threads <= 1 or batch <= 1 or batch * length * count < 2**22:
        sample_clouds(clouds, count, starts, chosen, 0, batch, leaf)
    else:
        bounds = np.linspace(0, batch, min(threads, batch) + 1).astype(int).tolist()
        pool = _thread_pool(threads)
        tasks = [pool.submit(sample_clouds, clouds, count, starts, chosen, low, high, leaf)
                 for low, high in zip(bounds[:-1], bounds[1:])]
        for task in tasks:
            task.result()
    return torch.from_numpy(chosen)


@torch.no_grad()
def knn(query: torch.Tensor, points: torch.Tensor, k: int, budget: int = DEFAULT_BUDGET) -> torch.Tensor:
    """Indices B×M×k of the ``k`` points nearest to each query point, nearest first (exact
    distances over every channel — xyz, or features for EdgeConv's dynamic graph — + topk, chunked
    over the queries). A query that is itself in ``points`` finds itself first."""
    _check_cloud(query, "query")
    _check_cloud(points)
    if not isinstance(k, int) or not 0 < k <= points.shape[1]:
        raise ValueError(f"cannot take k={k!r} neighbours among {points.shape[1]} points")
    reference = points.float()
    parts = [torch.cdist(part.float(), reference, compute_mode="donot_use_mm_for_euclid_dist")
             .topk(k, dim=-1, largest=False).indices for part in _query_chunks(query, points, budget)]
    return torch.cat(parts, dim=1)


@torch.no_grad()
def nearest_neighbour(query: torch.Tensor, points: torch.Tensor, budget: int = DEFAULT_BUDGET) -> torch.Tensor:
    """Index B×M of the nearest point in ``points`` for each query point (no gradient: an index).
    Distances come from the matrix-product expansion (fast); a caller that needs the distance
    recomputes it exactly from the neighbour found."""
    parts = [torch.cdist(part, points, compute_mode="use_mm_for_euclid_dist").argmin(dim=-1)
             for part in _query_chunks(query, points, budget)]
    return torch.cat(parts, dim=1)


def _directed(a: torch.Tensor, b: torch.Tensor, budget: int) -> torch.Tensor:
    """Squared distance B×N from each point of ``a`` to its nearest point of ``b``. The argmin is
    found without autograd, then the distance is recomputed from the gathered neighbour: the same
    gradient as differentiating through the full distance matrix, at a fraction of the memory."""
    neighbours = gather_points(b, nearest_neighbour(a.detach(), b.detach(), budget))
    return (a - neighbours).pow(2).sum(-1)


def _safe_sqrt(squared: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) gradient where a point sits exactly on its neighbour."""
    positive = squared > 0
    return torch.where(positive, squared.clamp_min(1e-30).sqrt(), torch.zeros_like(squared))


def chamfer_distance(a: torch.Tensor, b: torch.Tensor, variant: str = "l2", point_reduction: str = "mean",
                     halve: bool = False, batch_reduction: str | None = "mean",
                     budget: int = DEFAULT_BUDGET) -> torch.Tensor:
    """Chamfer distance between clouds a B×N×C and b B×M×C.

    ``variant="l2"`` uses squared distances, ``"l1"`` Euclidean ones. Per cloud, each direction's
    distances are reduced by ``point_reduction`` (``"mean"`` or ``"sum"``) and the two directions
    added (``halve`` divides that by 2); ``batch_reduction="mean"`` averages over the batch, None
    returns the B values. The references' conventions:

    - Point-MAE ``ChamferDistanceL2``: l2, mean, not halved, batch mean;
    - Point-MAE ``ChamferDistanceL1``: l1, mean, halved, batch mean;
    - MAE3D's loss: l2, sum, not halved, batch mean.
    """
    _check_cloud(a, "a")
    _check_cloud(b, "b")
    if a.shape[0] != b.shape[0] or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"chamfer_distance needs clouds of the same batch and dimension, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if variant not in ("l1", "l2"):
        raise ValueError(f"chamfer variant must be 'l1' or 'l2', got {variant!r}")
    if point_reduction not in ("mean", "sum") or batch_reduction not in ("mean", None):
        raise ValueError(f"chamfer point_reduction must be 'mean' or 'sum' and batch_reduction 'mean' or None, "
                         f"got {point_reduction!r}, {batch_reduction!r}")
    a_to_b, b_to_a = _directed(a, b, budget), _directed(b, a, budget)
    if variant == "l1":
        a_to_b, b_to_a = _safe_sqrt(a_to_b), _safe_sqrt(b_to_a)
    reduce = torch.mean if point_reduction == "mean" else torch.sum
    per_cloud = reduce(a_to_b, dim=-1) + reduce(b_to_a, dim=-1)
    if halve:
        per_cloud = per_cloud / 2
    return per_cloud.mean() if batch_reduction == "mean" else per_cloud
