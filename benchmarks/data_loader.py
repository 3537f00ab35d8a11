"""Does the data pipeline keep up with the step? The ImageNet-style MAE input pipeline (JPEG decode
from an ImageFolder tree, RandomResizedCrop 224 bicubic + flip + normalise, per-sample seeding,
collation) through a DataLoader with 0, 1 and 2 workers, against the MAE training step's own
throughput measured in the same run.

    python benchmarks/data_loader.py --quick

The JPEGs are written from scikit-image's bundled photographs at 500×375 (ImageNet's typical
size) into a temporary folder; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description  # noqa: E402
from mae_step import make_step  # noqa: E402

SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "gravel")


def write_jpeg_tree(root: Path, images: int) -> None:
    import skimage.data
    from PIL import Image

    for index in range(images):
        name = SOURCES[index % len(SOURCES)]
        array = np.asarray(getattr(skimage.data, name)())
        image = Image.fromarray(array).convert("RGB").resize((500, 375), Image.BICUBIC)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        image.rotate(index * 7 % 360).save(folder / f"{index:05d}.JPEG", quality=90)


def loader_samples_per_s(root: Path, workers: int, batch: int, batches: int) -> float:
    from maekit.data.views import AugmentedView

    view = AugmentedView(dict(type="image_folder", root=str(root), channels=3), dict(type="mae_augment", size=224))
    return view_samples_per_s(view, workers, batch, batches)


def view_samples_per_s(view, workers: int, batch: int, batches: int) -> float:
    """Samples per second a shuffled DataLoader over ``view`` delivers after its first batch. The
    indices are virtual (a training view maps ``v`` to sample ``v % len``, seeded by ``v``), so a
    small dataset serves as many batches as asked, each sample freshly augmented."""
    from torch.utils.data import DataLoader

    order = torch.randperm(batch * (batches + 1), generator=torch.Generator().manual_seed(0)).tolist()
    loader = DataLoader(view, batch_size=batch, sampler=order, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batch * batches / (time.perf_counter() - start)


def step_samples_per_s(model: torch.nn.Module, inputs: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """The training step's samples per second in fp32 and bf16, timed alternately in one run."""
    steps = {precision: make_step("maekit", model, inputs, dtype, fused=True)
             for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    return {precision: len(inputs) / seconds for precision, seconds in alternating_medians(steps, repeats).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ViT-B b8 step; 6 loader batches per setting")
    parser.add_argument("--size", default="base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.batches = 6
    results = {"machine": machine_description(), "size": args.size, "batch": args.batch, "loader": []}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_jpeg_tree(root, args.batch * (args.batches + 2))
        for workers in (int(w) for w in args.workers.split(",")):
            rate = loader_samples_per_s(root, workers, args.batch, args.batches)
            results["loader"].append({"workers": workers, "samples_per_s": rate})
    from maekit.registry import build

    torch.manual_seed(0)
    model = build("model", dict(type="mae", size=args.size, img_size=224))
    images = torch.randn(args.batch, 3, 224, 224)
    results["step_samples_per_s"] = step_samples_per_s(model, images)
    fastest = max(results["step_samples_per_s"].values())
    print(f"MAE ViT-{args.size} step, batch {args.batch}: " + ", ".join(
        f"{p} {v:.2f} samples/s" for p, v in results["step_samples_per_s"].items()))
    print(f"{'workers':>8} {'loader samples/s':>17} {'loader / fastest step':>22}")
    for row in results["loader"]:
        print(f"{row['workers']:8d} {row['samples_per_s']:17.1f} {row['samples_per_s'] / fastest:21.1f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
