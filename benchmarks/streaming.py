"""Streamed WebDataset shards vs the map-style folder, on the same JPEGs: what it costs to start,
to deliver batches, and to resume mid-run.

    python benchmarks/streaming.py --quick

The same JPEGs (scikit-image's bundled photographs at 500×375, ImageNet's typical size, written
here; nothing is downloaded) are read two ways, each through the MAE augmentation (RandomResizedCrop
224 + flip + normalise, seeded per sample) and a DataLoader:

- map-style: ``image_folder`` over a class-folder tree (one file per image), shuffled virtual
  indices (maekit's sampler);
- streamed: the same files packed into tar shards in img2dataset's layout (``KEY.jpg`` +
  ``KEY.cls``), read by :class:`maekit.data.streaming.StreamedView` (shards in a seeded order, each
  shard's samples in a seeded permutation by seeking).

Figures: building the dataset (the map-style one lists every file; the streamed one reads
index.json; an up-front index of the tars' member headers, what a map-style reader over shards
needs, is timed too), its Python memory (tracemalloc peak while building), samples/s with 0/1/2
loader workers after the first batch, the main process's RSS growth while loading and the
workers' RSS, and resuming at
batch K — mmengine's loop replays K batches for a map-style dataset, a stream opens its cursor's
shard. Figures are for this machine's page cache (the files were just written); on network or
spinning storage the map-style random reads fall further behind.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, peak_rss_kib  # noqa: E402
from data_loader import write_jpeg_tree  # noqa: E402


def pack_shards(tree: Path, out: Path, shard_size: int) -> int:
    """The tree's JPEGs, as they are, into tar shards (``KEY.jpg`` + ``KEY.cls``) and index.json."""
    files = sorted(tree.rglob("*.JPEG"))
    classes = sorted({path.parent.name for path in files})
    out.mkdir(parents=True)
    entries = []
    for first in range(0, len(files), shard_size):
        name = f"shard-{first // shard_size:06d}.tar"
        with tarfile.open(out / name, "w") as archive:
            for index, path in enumerate(files[first:first + shard_size], start=first):
                for suffix, data in (("jpg", path.read_bytes()), ("cls", str(classes.index(path.parent.name)).encode())):
                    info = tarfile.TarInfo(f"{index:09d}.{suffix}")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
        entries.append({"name": name, "samples": len(files[first:first + shard_size])})
    (out / "index.json").write_text(json.dumps({"format": "webdataset", "samples": len(files), "shards": entries}))
    return len(entries)


def built(make: Callable[[], Any]) -> tuple[Any, float, float]:
    """The dataset ``make()`` builds, the seconds it took and its Python allocations' peak (MiB)."""
    tracemalloc.start()
    start = time.perf_counter()
    dataset = make()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return dataset, seconds, peak


def map_loader(tree: Path, workers: int, batch: int) -> Any:
    from torch.utils.data import DataLoader

    from maekit.data.views import AugmentedView
    from maekit.engine.sampler import VirtualIndexSampler

    view = AugmentedView(dict(type="image_folder", root=str(tree), channels=3), dict(type="mae_augment", size=224))
    sampler = VirtualIndexSampler(view, shuffle=True, seed=0)
    return DataLoader(view, batch_size=batch, sampler=sampler, num_workers=workers)


def stream_loader(shards: Path, workers: int, batch: int, resume_after: int = 0) -> Any:
    """A streamed loader; with ``resume_after``, started at the cursor reached after that many
    batches (computed without reading: every batch of reader r takes the next ``batch`` samples)."""
    from torch.utils.data import DataLoader

    from maekit.data.streaming import StreamedView

    view = StreamedView(dict(type="shards", shards=str(shards)), dict(type="mae_augment", size=224), seed=0)
    readers = max(1, workers)
    if resume_after:
        for reader in range(readers):
            consumed = len(range(reader, resume_after, readers)) * batch
            order = view.shards_of(reader, readers, 0)
            slot, offset = 0, consumed
            while offset >= view.dataset.counts[order[slot]]:
                offset -= view.dataset.counts[order[slot]]
                slot += 1
            view.resume_from[reader] = (0, slot, offset)
        view.worker_shift = resume_after % readers
    return DataLoader(view, batch_size=batch, num_workers=workers)


def rss_mib(pid: int | None = None) -> float:
    """A process's resident set now (MiB), from /proc."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmRSS"))) / 1024


def samples_per_s(loader: Any, batches: int) -> dict[str, float]:
    """Samples per second after the first batch; the main process's RSS growth while loading (its
    peak over its RSS before) and the loader workers' RSS at the end (MiB)."""
    before = rss_mib()
    peak_rss_kib(reset=True)
    iterator = iter(loader)
    first = next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = len(first["inputs"]) * batches / (time.perf_counter() - start)
    workers = sum(rss_mib(worker.pid) for worker in getattr(iterator, "_workers", []))
    figures = {"samples_per_s": rate, "main_growth_mib": peak_rss_kib() / 1024 - before, "workers_rss_mib": workers}
    del iterator
    return figures


def header_scan_seconds(shards: Path) -> float:
    """What indexing the shards up front costs (a map-style reader over tars reads every member
    header of every shard before the first step; the stream reads index.json)."""
    start = time.perf_counter()
    for path in sorted(shards.glob("*.tar")):
        with tarfile.open(path, "r:") as archive:
            archive.getmembers()
    return time.perf_counter() - start


def first_batch_seconds(make: Callable[[], Any], replay: int) -> float:
    """Seconds from a fresh loader to the batch a resumed run trains on next (after ``replay``
    batches drawn and discarded, as mmengine's loop does for a map-style dataset)."""
    start = time.perf_counter()
    iterator = iter(make())
    for _ in range(replay + 1):
        next(iterator)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="512 images, 6 batches per setting, resume at batch 24")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--resume-at", type=int, default=64)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.images, args.batches, args.resume_at = 512, 6, 24
    workers = [int(w) for w in args.workers.split(",")]
    torch.manual_seed(0)
    results: dict[str, Any] = {"machine": machine_description(), "images": args.images, "batch": args.batch}
    with tempfile.TemporaryDirectory() as folder:
        tree, shards = Path(folder) / "tree", Path(folder) / "shards"
        write_jpeg_tree(tree, args.images)
        results["shards"] = pack_shards(tree, shards, args.shard_size)
        from maekit.data.images import ImageFolderDataset
        from maekit.data.shards import ShardDataset

        _, map_s, map_mib = built(lambda: ImageFolderDataset(str(tree), channels=3))
        _, stream_s, stream_mib = built(lambda: ShardDataset(str(shards)))
        scan_s = header_scan_seconds(shards)
        results["build"] = {"map_style": {"seconds": map_s, "python_mib": map_mib},
                            "streamed": {"seconds": stream_s, "python_mib": stream_mib},
                            "tar_header_index_seconds": scan_s}
        print(f"{args.images} JPEGs 500×375, {results['shards']} shards of {args.shard_size}; batch {args.batch}")
        print(f"build: map-style folder {map_s * 1e3:.1f} ms ({map_mib:.2f} MiB)   streamed {stream_s * 1e3:.1f} ms "
              f"({stream_mib:.2f} MiB)   an up-front index of the tars' headers {scan_s * 1e3:.1f} ms "
              f"({scan_s / args.images * 1e6:.1f} µs per sample)")
        results["loading"] = {}
        for count in workers:
            figures = {"map_style": samples_per_s(map_loader(tree, count, args.batch), args.batches),
                       "streamed": samples_per_s(stream_loader(shards, count, args.batch), args.batches)}
            results["loading"][count] = figures
            line = "   ".join(f"{name} {f['samples_per_s']:.1f} samples/s (main +{f['main_growth_mib']:.0f} MiB, "
                               f"workers {f['workers_rss_mib']:.0f} MiB)" for name, f in figures.items())
            print(f"{count} worker(s): {line}   ratio "
                  f"{figures['streamed']['samples_per_s'] / figures['map_style']['samples_per_s']:.2f}")
        count = workers[-1]
        replay = first_batch_seconds(lambda: map_loader(tree, count, args.batch), args.resume_at)
        cursor = first_batch_seconds(lambda: stream_loader(shards, count, args.batch, args.resume_at), 0)
        results["resume"] = {"at_batch": args.resume_at, "workers": count, "map_style_replay_s": replay,
                             "streamed_cursor_s": cursor}
        print(f"resume at batch {args.resume_at} ({count} workers): map-style replay {replay:.2f} s   "
              f"streamed cursor {cursor:.2f} s   ({replay / cursor:.1f}×)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
