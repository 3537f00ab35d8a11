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


@pytest.mark.parametrize("start", [0, 7, None])
def test_compiled_fps_chooses_exactly_the_points_of_the_torch_path(start):
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    clouds = torch.rand(5, 1000, 3, generator=generator)
    # ties everywhere: a coarse integer grid repeats every distance many times over, and a
    # duplicated point must not be chosen twice before every distinct point is
    grid = torch.randint(0, 4, (3, 600, 3), generator=generator).float()
    grid[:, 1] = grid[:, 0]
    for cloud in (clouds, grid, clouds.double(), torch.cat([clouds, clouds[..., :1]], -1)):
        first = torch.randint(cloud.shape[1], (cloud.shape[0],)) if start is None else start
        by_torch = farthest_point_sample(cloud, 64, first, backend="torch")
        by_loop = farthest_point_sample(cloud, 64, first, backend="compiled")
        assert torch.equal(by_loop, by_torch)
        assert by_loop.dtype == torch.long and by_loop.shape == (cloud.shape[0], 64)
    assert torch.equal(farthest_point_sample(clouds, 64), farthest_point_sample(clouds, 64, backend="torch"))
    assert len(set(farthest_point_sample(grid, 64)[0].tolist())) == 64
    with pytest.raises(ValueError, match="FPS backend must be one of auto, torch, compiled, got 'cuda'"):
        farthest_point_sample(clouds, 4, backend="cuda")


def test_compiled_fps_runs_the_same_on_one_thread_and_in_a_forked_child():
    clouds = torch.rand(4, 500, 3, generator=torch.Generator().manual_seed(4))
    expected = farthest_point_sample(clouds, 32, backend="torch")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(farthest_point_sample(clouds, 32), expected)
    finally:
        torch.set_num_threads(threads)
    # a data-loader worker forks after the parent sampled: the child must neither hang nor differ
    context = torch.multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        child = pool.apply_async(farthest_point_sample, (clouds, 32)).get(timeout=60)
    assert torch.equal(child, expected)


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
