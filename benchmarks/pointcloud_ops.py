"""Point-cloud hot paths of maekit-pointcloud, side by side in one process (contenders alternate,
median of repeats): farthest point sampling (the compiled CPU loop and the batched torch path)
against open3d's, kNN against a full sort, and the Chamfer distance (forward + backward) against
the naive autograd version that differentiates through the whole distance matrix — time and the
peak memory each adds.

    python benchmarks/pointcloud_ops.py --quick
    python benchmarks/pointcloud_ops.py --quick --batch 8 --points 8192 --centres 1024
    python benchmarks/pointcloud_ops.py --quick --batch 1 --points 250000 --centres 1024 --fps-only

open3d's FPS runs one cloud after another on one thread; the compiled loops are timed on all of
torch's threads and on one. ``compiled = torch indices`` compares with the torch path on the CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description, peak_rss_kib  # noqa: E402


def open3d_clouds(clouds: torch.Tensor) -> list:
    """open3d's own cloud objects (float64), built once, outside the timing."""
    import open3d

    return [open3d.geometry.PointCloud(open3d.utility.Vector3dVector(cloud)) for cloud in clouds.numpy().astype(np.float64)]


def open3d_fps(clouds: list, count: int) -> list[np.ndarray]:
    """open3d's exact FPS (C++), one cloud after another as its API takes them."""
    return [np.asarray(cloud.farthest_point_down_sample(count).points) for cloud in clouds]


def on_one_thread(function):
    """``function`` run with torch's thread count at 1, so the compiled FPS uses one thread as open3d does."""
    def run():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function()
        finally:
            torch.set_num_threads(threads)
    return run


def naive_chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The usual plain-torch Chamfer-L2: autograd through the whole B×N×M distance matrix."""
    squared = torch.cdist(a, b) ** 2
    return (squared.min(2).values.mean(1) + squared.min(1).values.mean(1)).mean()


def peak_mib(fn, device: str) -> float:
    """Memory ``fn`` adds at its peak (MiB): CUDA's allocator peak, or the process's resident-set peak."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    before = peak_rss_kib(reset=True)
    fn()
    return (peak_rss_kib() - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--points", type=int, default=2048, help="cloud size (FPS, kNN)")
    parser.add_argument("--centres", type=int, default=64)
    parser.add_argument("--chamfer-points", type=int, default=4096, help="points per cloud for Chamfer")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fps-only", action="store_true", help="time farthest point sampling only")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    from maekit_pointcloud.geometry import chamfer_distance, farthest_point_sample, gather_points, knn

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    generator = torch.Generator().manual_seed(0)
    clouds = torch.rand(args.batch, args.points, 3, generator=generator)
    results = {"machine": machine_description(), "device": args.device, "batch": args.batch}

    # FPS: ours (the compiled CPU loops on all threads and on one, and batched torch on the
    # device) against open3d's (per cloud, one CPU thread)
    on_device = clouds.to(args.device)
    theirs = open3d_clouds(clouds)
    compiled = lambda: farthest_point_sample(clouds, args.centres, backend="compiled")  # noqa: E731
    contenders = {"compiled": compiled, "compiled_1_thread": on_one_thread(compiled),
                  "torch": lambda: farthest_point_sample(on_device, args.centres, backend="torch"),
                  "open3d": lambda: open3d_fps(theirs, args.centres)}
    times = alternating_medians(contenders, repeats, sync)  # the warm-up call compiles or loads numba's cache
    ours = compiled()
    identical = bool(torch.equal(ours, farthest_point_sample(clouds, args.centres, backend="torch")))
    chosen = gather_points(clouds, ours)
    agree = np.mean([np.allclose(np.sort(o.numpy(), 0), np.sort(t, 0)) for o, t in zip(chosen, open3d_fps(theirs, args.centres))])
    results["fps"] = {"points": args.points, "centres": args.centres, "threads": torch.get_num_threads(),
                      **{f"{k}_seconds": v for k, v in times.items()},
                      "compiled_equals_torch_on_cpu": identical, "same_points_as_open3d_share": float(agree)}
    print(f"FPS {args.batch}×{args.points} → {args.centres}: compiled {times['compiled'] * 1e3:.1f} ms "
          f"({torch.get_num_threads()} threads), on 1 thread {times['compiled_1_thread'] * 1e3:.1f} ms, torch "
          f"({args.device}) {times['torch'] * 1e3:.1f} ms, open3d {times['open3d'] * 1e3:.1f} ms (1 thread); "
          f"open3d/compiled {times['open3d'] / times['compiled']:.2f}×, 1 thread "
          f"{times['open3d'] / times['compiled_1_thread']:.2f}×, torch {times['open3d'] / times['torch']:.2f}×; "
          f"compiled = torch indices: {identical}; same points as open3d in {agree:.0%} of clouds")
    if args.fps_only:
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
        return

    # kNN: ours (chunked cdist + topk) against a full argsort of the distance matrix
    centres = gather_points(on_device, farthest_point_sample(on_device, args.centres))

    def full_sort() -> torch.Tensor:
        return ((centres[:, :, None] - on_device[:, None]) ** 2).sum(-1).argsort(dim=-1)[..., :32]

    times = alternating_medians({"maekit": lambda: knn(centres, on_device, 32), "full_sort": full_sort}, repeats, sync)
    results["knn"] = {"k": 32, **{f"{k}_seconds": v for k, v in times.items()},
                      "identical": bool(torch.equal(knn(centres, on_device, 32).sort(-1).values,
                                                    full_sort().sort(-1).values))}
    print(f"kNN k=32 of {args.centres} centres: maekit {times['maekit'] * 1e3:.2f} ms, full sort "
          f"{times['full_sort'] * 1e3:.2f} ms, ratio {times['full_sort'] / times['maekit']:.2f}")

    # Chamfer forward + backward: argmin without grad then gather, against autograd through N×M
    n = args.chamfer_points
    a = torch.rand(args.batch, n, 3, generator=generator).to(args.device).requires_grad_()
    b = torch.rand(args.batch, n, 3, generator=generator).to(args.device)

    def step(function) -> None:
        a.grad = None
        function(a, b).backward()

    contenders = {"maekit": lambda: step(chamfer_distance), "naive": lambda: step(naive_chamfer)}
    times = alternating_medians(contenders, repeats, sync)
    memory = {name: peak_mib(run, args.device) for name, run in contenders.items()}
    same = torch.allclose(chamfer_distance(a, b), naive_chamfer(a, b), rtol=1e-5)
    results["chamfer"] = {"points": n, **{f"{k}_seconds": v for k, v in times.items()},
                          **{f"{k}_peak_mib": v for k, v in memory.items()}, "same_value": bool(same)}
    print(f"Chamfer-L2 fwd+bwd {args.batch}×{n} vs {n}: maekit {times['maekit'] * 1e3:.0f} ms / {memory['maekit']:.0f} MiB, "
          f"naive {times['naive'] * 1e3:.0f} ms / {memory['naive']:.0f} MiB; time ratio naive/maekit "
          f"{times['naive'] / times['maekit']:.2f}, memory ratio {memory['naive'] / max(memory['maekit'], 1e-3):.1f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
