"""Point-cloud geometry in plain, batched torch (CPU and GPU alike, no CUDA extension to build):
farthest point sampling, k nearest neighbours and the Chamfer distance.

The reference implementations depend on pointnet2_ops (FPS), KNN_CUDA and a Chamfer CUDA
extension, the install failure most reported in their trackers. These run wherever torch runs;
on CPU tensors FPS runs a numba-compiled loop per cloud instead (`fps_kernel`), which chooses the
same points as the torch path and outruns open3d's C++ FPS on batches.
Every pairwise step is chunked over the query points so that one chunk holds at most ``budget``
distances (2²⁴ floats, 64 MiB, by default), whatever the batch and cloud sizes.
"""
from __future__ import annotations

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


def farthest_point_sample(points: torch.Tensor, count: int, start: torch.Tensor | int | None = 0,
                          backend: str = "auto") -> torch.Tensor:
    """Indices B×count of iterative farthest point sampling (as pointnet2_ops' ``furthest_point_sample``):
    begin at ``start`` (index 0 as the reference; a B-vector, or None for a random start), then
    repeatedly take the point farthest from everything chosen so far. Exact, O(B·N) work per step.

    ``backend``: ``"torch"`` runs batched torch ops on the clouds' device (the GPU path, inside the
    training graph); ``"compiled"`` runs a numba-compiled loop per cloud on CPU threads (faster than
    open3d's C++ FPS on batches; see ``benchmarks/pointcloud_ops.py``); ``"auto"`` takes the compiled
    loop for CPU tensors and torch elsewhere. Both choose the same points (tested)."""
    _check_cloud(points)
    batch, length, _ = points.shape
    if not isinstance(count, int) or not 0 < count <= length:
        raise ValueError(f"cannot sample {count!r} points by FPS from clouds of {length} points")
    if backend not in FPS_BACKENDS:
        raise ValueError(f"FPS backend must be one of {', '.join(FPS_BACKENDS)}, got {backend!r}")
    xyz = points[..., :3].detach().float()
    if start is None:
        first = torch.randint(length, (batch,), device=points.device)
    else:
        first = torch.as_tensor(start, device=points.device).long().expand(batch).clone()
    if backend == "compiled" or (backend == "auto" and points.device.type == "cpu"):
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


def _fps_compiled(xyz: torch.Tensor, count: int, first: torch.Tensor) -> torch.Tensor:
    """The numba loop, one cloud per task on up to torch's thread count (1 inside data-loader
    workers). Below about 2²⁰ distance updates per thread (~1 ms) starting threads costs more than
    it saves, so small batches run inline. The pool lives for one call only, so a process forked
    later inherits no threads."""
    from maekit_pointcloud.fps_kernel import fps_one_cloud

    clouds = xyz.contiguous().numpy()
    chosen = np.empty((len(clouds), count), dtype=np.int64)
    starts = first.tolist()

    def sample(index: int) -> None:
        fps_one_cloud(clouds[index], count, starts[index], chosen[index])

    work = len(clouds) * clouds.shape[1] * count
    threads = min(torch.get_num_threads(), len(clouds), work >> 20)
    if threads <= 1:
        for index in range(len(clouds)):
            sample(index)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(sample, range(len(clouds))))
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
