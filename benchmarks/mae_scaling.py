"""How maekit's MAE step scales: step time versus mask ratio (the encoder sees only the visible
share, so its cost falls with the ratio; the decoder always sees every token) and peak memory
versus batch size. maekit only — these are properties of our step, not a comparison.

    python benchmarks/mae_scaling.py --quick          # ViT-B, fp32: ratios 0/0.5/0.75/0.9 at batch 8; batches 2/4/8
    python benchmarks/mae_scaling.py --size tiny --precision bf16 --out scaling.json

Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the growth of the process's peak
resident set over the model's, each batch size measured in a fresh process (the peak RSS of a
process never falls, so sizes cannot share one).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description, peak_rss_kib  # noqa: E402
from mae_step import make_step  # noqa: E402


def num_visible(num_tokens: int, ratio: float) -> int:
    from maekit.nn.masking import num_visible as visible_count

    return visible_count(num_tokens, ratio)


def build(size: str, mask_ratio: float) -> torch.nn.Module:
    from maekit.registry import build as build_component

    return build_component("model", dict(type="mae", size=size, img_size=224, mask_ratio=mask_ratio, norm_pix_loss=True))


def encoder_flops(model: torch.nn.Module, images: torch.Tensor) -> int:
    """Forward FLOPs of the encoder alone, on the visible tokens of one batch."""
    tokens = model.tokenize(images)
    mask = model.make_mask(tokens)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.encoder(model.encoder_input(images, tokens, mask))
    return counter.get_total_flops()


def peak_memory_mib(size: str, batch: int, precision: str, device: str) -> float:
    """Memory one training step adds over the built model (MiB), in this process."""
    torch.manual_seed(0)
    model = build(size, 0.75).to(device)
    images = torch.randn(batch, 3, 224, 224, device=device)
    step = make_step("maekit", model, images, torch.bfloat16 if precision == "bf16" else torch.float32, fused=True)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        step()  # the second step holds the optimiser state too
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    before = peak_rss_kib(reset=True)
    step()
    step()
    return (peak_rss_kib() - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats, batches 2/4/8")
    parser.add_argument("--size", default="base")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=8, help="batch of the mask-ratio sweep")
    parser.add_argument("--ratios", default="0,0.5,0.75,0.9")
    parser.add_argument("--batches", default="2,4,8,16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-only", nargs=2, metavar=("SIZE", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.memory_only:  # the child process of one memory measurement
        print(peak_memory_mib(args.memory_only[0], int(args.memory_only[1]), args.precision, device))
        return
    if args.quick:
        args.repeats, args.batches = 3, "2,4,8"
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    results = {"machine": machine_description(), "device": device, "size": args.size, "precision": args.precision,
               "mask_ratio_sweep": [], "memory_vs_batch": []}

    print(f"ViT-{args.size} {args.precision}, batch {args.batch}: step time versus mask ratio")
    print(f"{'ratio':>6} {'visible':>8} {'s/step':>8} {'samples/s':>10} {'encoder GFLOP':>14}")
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, 224, 224, device=device)
    ratios = [float(r) for r in args.ratios.split(",")]
    models = {ratio: build(args.size, ratio).to(device) for ratio in ratios}
    steps = {ratio: make_step("maekit", model, images, dtype, fused=True) for ratio, model in models.items()}
    medians = alternating_medians(steps, args.repeats, sync)
    for ratio in ratios:
        seconds = medians[ratio]
        visible = num_visible(models[ratio].tokenize(images).num_tokens, ratio)
        row = {"mask_ratio": ratio, "visible_tokens": visible, "seconds_per_step": seconds,
               "samples_per_s": args.batch / seconds, "encoder_forward_flops": encoder_flops(models[ratio], images)}
        results["mask_ratio_sweep"].append(row)
        print(f"{ratio:6.2f} {visible:8d} {seconds:8.2f} {row['samples_per_s']:10.2f} {row['encoder_forward_flops'] / 1e9:14.1f}")
    del models, steps

    print(f"\nViT-{args.size} {args.precision}, mask 0.75: memory one step adds over the model versus batch")
    print(f"{'batch':>6} {'MiB':>8} {'MiB/sample':>11}")
    for batch in (int(b) for b in args.batches.split(",")):
        child = subprocess.run([sys.executable, __file__, "--precision", args.precision, "--memory-only", args.size,
                                str(batch)], capture_output=True, text=True, check=True)
        mib = float(child.stdout.strip().splitlines()[-1])
        results["memory_vs_batch"].append({"batch": batch, "step_memory_mib": mib})
        print(f"{batch:6d} {mib:8.0f} {mib / batch:11.1f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
