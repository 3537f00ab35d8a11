"""AdamW step over an MAE's parameters: fused (what `maekit train` uses) against foreach (PyTorch's
default), alternating, median of repeats. Gradients are random; only the update is timed.

    python benchmarks/optimizer_step.py --quick
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--sizes", default="tiny,base")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    from maekit.registry import build

    results = {"machine": machine_description(), "runs": []}
    print(f"{'size':6} {'params (M)':>10} {'foreach ms':>11} {'fused ms':>9} {'speed-up':>9}")
    for size in args.sizes.split(","):
        params = [p for p in build("model", dict(type="mae", size=size)).parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p)
        optimisers = {"foreach": torch.optim.AdamW(params, lr=1e-4, foreach=True),
                      "fused": torch.optim.AdamW(params, lr=1e-4, fused=True)}
        # the warm-up call allocates the moments
        median = alternating_medians({name: optimiser.step for name, optimiser in optimisers.items()}, repeats)
        run = {"size": size, "parameters": sum(p.numel() for p in params), **{f"{k}_seconds": v for k, v in median.items()}}
        results["runs"].append(run)
        print(f"{size:6} {run['parameters'] / 1e6:10.1f} {median['foreach'] * 1e3:11.1f} {median['fused'] * 1e3:9.1f} "
              f"{median['foreach'] / median['fused']:8.1f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
