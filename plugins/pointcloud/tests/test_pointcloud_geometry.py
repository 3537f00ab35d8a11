"""FPS, kNN and Chamfer in plain torch against hand-made clouds and brute-force references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maekit_pointcloud.geometry import chamfer_distance, farthest_point_sample, gather_points, knn


def test_fps_picks_the_known_farthest_points_on_a_hand_made_cloud():
    line = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0], [5, 0, 0]])[None]
    # from index 0: 10 is farthest; then 5 (5 from both); then 2 (2 from 0, 3 from 5)
    assert farthest_point_sample(line, 4).tolist() == [[0, 3, 4, 2]]
    assert farthest_point_sample(line, 2, start=3).tolist() == [[3, 0]]


def numpy_fps(points: np.ndarray, count: int) -> list[int]:
    chosen, nearest = [0], ((points - points[0]) ** 2).sum(1)
    for _ in range(count - 1):
        chosen.append(int(nearest.argmax()))
        nearest = np.minimum(nearest, ((points - points[chosen[-1]]) ** 2).sum(1))
    return chosen


def test_fps_equals_a_numpy_transcription_per_cloud_of_a_batch():
    clouds = torch.rand(3, 300, 3, generator=torch.Generator().manual_seed(0))
    picked = farthest_point_sample(clouds, 20)
    for cloud, row in zip(clouds, picked):
        assert row.tolist() == numpy_fps(cloud.double().numpy(), 20)
    with pytest.raises(ValueError, match="cannot sample 301 points"):
        farthest_point_sample(clouds, 301)


def tie_heavy_clouds(generator: torch.Generator) -> torch.Tensor:
    """A coarse integer grid: every distance repeats many times over; duplicated points too."""
    grid = torch.randint(0, 4, (3, 600, 3), generator=generator).float()
    grid[:, 1] = grid[:, 0]
    return grid


@pytest.mark.parametrize("loop", ["linear", "bucketed", "bucketed, small leaves"])
@pytest.mark.parametrize("start", [0, 7, -1, None])
def test_compiled_fps_chooses_exactly_the_points_of_the_torch_path(monkeypatch, loop, start):
    from maekit_pointcloud import geometry

    monkeypatch.setattr(geometry, "BUCKETED_SAMPLES", 10**9 if loop == "linear" else 1)
    monkeypatch.setattr(geometry, "BUCKETED_POINTS", 1)
    monkeypatch.setattr(geometry, "LEAF_POINTS", 8 if "small" in loop else 64)
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    clouds = torch.rand(5, 1000, 3, generator=generator)
    stretched = torch.randn(2, 700, 3, generator=generator) * torch.tensor([100.0, 1.0, 0.01])
    for cloud in (clouds, tie_heavy_clouds(generator), stretched, clouds.double(),
                  torch.cat([clouds, clouds[..., :1]], -1), clouds[..., :2], clouds[..., :1]):
        first = torch.randint(cloud.shape[1], (cloud.shape[0],)) if start is None else start
        by_torch = farthest_point_sample(cloud, 64, first, backend="torch")
        by_loop = farthest_point_sample(cloud, 64, first, backend="compiled")
        assert torch.equal(by_loop, by_torch), cloud.shape
        assert by_loop.dtype == torch.long and by_loop.shape == (cloud.shape[0], 64)
        assert (by_loop >= 0).all()  # a negative start counts from the end, as an index
    # a cloud smaller than one leaf of the bucketed loop
    small = torch.rand(5, 40, 3, generator=generator)
    assert torch.equal(farthest_point_sample(small, 30, backend="compiled"), farthest_point_sample(small, 30, backend="torch"))
    # sampling the whole grid: every distinct position is taken before any position repeats
    grid = tie_heavy_clouds(generator)
    picked = farthest_point_sample(grid, 600)
    assert torch.equal(picked, farthest_point_sample(grid, 600, backend="torch"))
    for cloud, row in zip(grid, picked):
        distinct = len(torch.unique(cloud, dim=0))
        assert len(torch.unique(cloud[row[:distinct]], dim=0)) == distinct


def test_fps_refuses_what_it_cannot_sample_with_one_clear_message():
    clouds = torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(5))
    with pytest.raises(ValueError, match="FPS backend must be one of auto, torch, compiled, got 'cuda'"):
        farthest_point_sample(clouds, 4, backend="cuda")
    with pytest.raises(ValueError, match=r"FPS start \[50, 50\] is outside clouds of 50 points"):
        farthest_point_sample(clouds, 4, start=50)
    for start in (1.5, [1, 2, 3], torch.zeros(2, 1, dtype=torch.long)):
        with pytest.raises(ValueError, match="FPS start must be an int or 2 ints"):
            farthest_point_sample(clouds, 4, start=start)
    broken = clouds.clone()
    broken[1, 7, 2] = float("nan")
    for backend in ("torch", "compiled"):
        with pytest.raises(ValueError, match="FPS needs finite coordinates"):
            farthest_point_sample(broken, 4, backend=backend)


def test_compiled_fps_threads_and_a_forked_child_choose_the_same_points(monkeypatch):
    from maekit_pointcloud import geometry

    # large enough (5 × 14000 × 64 > 2²² updates) for the thread pool, bucketed and linear
    clouds = torch.rand(5, 14000, 3, generator=torch.Generator().manual_seed(4))
    expected = farthest_point_sample(clouds, 64, backend="torch")
    threads = torch.get_num_threads()
    try:
        for count in (3, 1):
            torch.set_num_threads(count)
            for bucketed_from in (1, 10**9):
                monkeypatch.setattr(geometry, "BUCKETED_SAMPLES", bucketed_from)
                monkeypatch.setattr(geometry, "BUCKETED_POINTS", 1)
                assert torch.equal(farthest_point_sample(clouds, 64), expected)
        torch.set_num_threads(2)
        farthest_point_sample(clouds, 64)  # the parent now holds a pool with live threads
        assert geometry._pool is not None
        # a data-loader worker forks after the parent sampled: it sees no inherited pool (whose
        # threads did not survive the fork) and samples the same points
        loader = torch.utils.data.DataLoader(SampledClouds(clouds), batch_size=None, num_workers=1,
                                             multiprocessing_context="fork")
        for index, (pool_inherited, chosen) in enumerate(loader):
            assert not pool_inherited and torch.equal(chosen, expected[index])
        # a forked child that keeps two threads really uses a pool: its own, made after the fork
        # (the parent's, inherited without its threads, would never run the tasks: a hang)
        with torch.multiprocessing.get_context("fork").Pool(1) as pool:
            child = pool.apply_async(sample_with_two_threads, (clouds,)).get(timeout=120)
        assert np.array_equal(child, expected.numpy())
    finally:
        torch.set_num_threads(threads)


def sample_with_two_threads(clouds: torch.Tensor) -> np.ndarray:
    """In a forked child: the compiled path on a 2-thread pool, without any torch operator that
    would open an OpenMP region (GNU OpenMP cannot run one in a child forked after the parent used it)."""
    from maekit_pointcloud import geometry

    torch.set_num_threads(2)
    return geometry._fps_compiled(clouds, 64, torch.zeros(len(clouds), dtype=torch.long)).numpy()


class SampledClouds(torch.utils.data.Dataset):
    """Each cloud's FPS indices, computed where the dataset runs (as `point_cloud_eval_transform`)."""

    def __init__(self, clouds: torch.Tensor) -> None:
        self.clouds = clouds

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, index: int) -> tuple[bool, torch.Tensor]:
        from maekit_pointcloud import geometry

        pool_inherited = geometry._pool is not None
        return pool_inherited, farthest_point_sample(self.clouds[index:index + 1], 64)[0]


def test_knn_matches_brute_force_and_chunking_changes_nothing():
    generator = torch.Generator().manual_seed(1)
    points, query = torch.rand(2, 200, 3, generator=generator), torch.rand(2, 33, 3, generator=generator)
    found = knn(query, points, 7)
    distances = ((query.double()[:, :, None] - points.double()[:, None]) ** 2).sum(-1).numpy()
    expected = np.argsort(distances, axis=-1, kind="stable")[..., :7]
    assert np.array_equal(found.numpy(), expected)
    assert torch.equal(knn(query, points, 7, budget=5 * 200 * 2), found)
    # a query point that is in the cloud finds itself first
    assert torch.equal(knn(points[:, :10], points, 1)[..., 0], torch.arange(10).expand(2, 10))


def brute_force_chamfer(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    squared = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    return squared.min(2), squared.min(1)  # a→b per point of a, b→a per point of b


def test_chamfer_equals_brute_force_in_each_references_convention():
    generator = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 50, 3, generator=generator).double(), torch.rand(3, 70, 3, generator=generator).double()
    ab, ba = brute_force_chamfer(a.numpy(), b.numpy())
    point_mae_l2 = (ab.mean(1) + ba.mean(1)).mean()
    point_mae_l1 = ((np.sqrt(ab).mean(1) + np.sqrt(ba).mean(1)) / 2).mean()
    mae3d_sum = ab.sum(1) + ba.sum(1)
    assert chamfer_distance(a, b).item() == pytest.approx(point_mae_l2, rel=1e-12)
    assert chamfer_distance(a, b, "l1", halve=True).item() == pytest.approx(point_mae_l1, rel=1e-12)
    assert np.allclose(chamfer_distance(a, b, "l2", "sum", batch_reduction=None).numpy(), mae3d_sum, rtol=1e-12)
    assert chamfer_distance(a, b, budget=7 * 70 * 3).item() == pytest.approx(point_mae_l2, rel=1e-12)
    assert chamfer_distance(a, a).item() == 0 and chamfer_distance(a, a, "l1").item() == 0


def test_chamfer_gradient_equals_autograd_through_the_full_distance_matrix():
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(2, 40, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.rand(2, 60, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    for variant, point_reduction in (("l2", "mean"), ("l2", "sum"), ("l1", "mean")):
        ours = torch.autograd.grad(chamfer_distance(a, b, variant, point_reduction), (a, b))
        squared = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
        ab, ba = squared.min(2).values, squared.min(1).values
        if variant == "l1":
            ab, ba = ab.sqrt(), ba.sqrt()
        reduce = torch.mean if point_reduction == "mean" else torch.sum
        naive = torch.autograd.grad((reduce(ab, 1) + reduce(ba, 1)).mean(), (a, b))
        for mine, theirs in zip(ours, naive):
            assert torch.allclose(mine, theirs, atol=1e-12), (variant, point_reduction)


def test_chamfer_and_gather_refuse_mismatched_clouds():
    with pytest.raises(ValueError, match="same batch and dimension"):
        chamfer_distance(torch.rand(2, 5, 3), torch.rand(3, 5, 3))
    with pytest.raises(ValueError, match="B×N×C"):
        chamfer_distance(torch.rand(5, 3), torch.rand(5, 3))
    points = torch.arange(12.0).reshape(1, 4, 3)
    assert gather_points(points, torch.tensor([[[3, 0]]])).tolist() == [[[[9, 10, 11], [0, 1, 2]]]]
