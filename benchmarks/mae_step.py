"""MAE pre-training step (forward + backward + AdamW step, mask 0.75, 224 px, patch 16):
maekit's `mae` against transformers' ViTMAEForPreTraining, same sizes and precision, measured side
by side in one process (contenders alternate every repeat; the median is reported).

    python benchmarks/mae_step.py --quick            # ViT-Tiny b32 and ViT-B b8, fp32 and bf16
    python benchmarks/mae_step.py --sizes base --precisions bf16 --repeats 10 --out step.json

Reports samples/s, the maekit/transformers ratio, model FLOPs per step (torch's FLOP counter) and
MFU against the peak of a 2048² matmul in the same dtype timed in the same alternating rounds.
``--profile`` (CPU only) adds where each step's time goes (torch's profiler, self time per operator
grouped: matmuls, attention, copies and dtype casts, layer norms, the fused optimiser, the rest —
transformers' unfused AdamW lands in "the rest").

    python benchmarks/mae_step.py --sizes base --precisions bf16 --profile
"""
from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import flop_counter, machine_description, matmul_contender, median_seconds, method_loss, timed_steps, training_step  # noqa: E402

SIZES = {  # name: (width, depth, heads, default batch)
    "tiny": (192, 12, 3, 32),
    "small": (384, 12, 6, 16),
    "base": (768, 12, 12, 8),
    "large": (1024, 24, 16, 4),
}


def build_maekit(size: str, compile_model: bool) -> torch.nn.Module:
    from maekit.registry import build

    model = build("model", dict(type="mae", size=size, img_size=224, mask_ratio=0.75, norm_pix_loss=True))
    if compile_model:
        model.compile()  # in place, as `maekit train --compile` does
    return model


def build_transformers(size: str) -> torch.nn.Module:
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    width, depth, heads, _ = SIZES[size]
    config = ViTMAEConfig(hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                          intermediate_size=4 * width, decoder_hidden_size=512, decoder_num_hidden_layers=8,
                          decoder_num_attention_heads=16, decoder_intermediate_size=2048, image_size=224,
                          patch_size=16, mask_ratio=0.75, norm_pix_loss=True, layer_norm_eps=1e-6,
                          attn_implementation="sdpa")
    return ViTMAEForPreTraining(config)


def make_step(name: str, model: torch.nn.Module, images: torch.Tensor, dtype: torch.dtype, fused: bool):
    loss_of = partial(method_loss, model, images) if name == "maekit" else partial(transformers_loss, model, images)
    return training_step(model, loss_of, dtype, images.device.type, fused)


def transformers_loss(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=images).loss


CATEGORIES = (  # (group, aten operators): exact names, except the attention kernels' family prefix
    ("attention", ("aten::_scaled_dot_product", "aten::_softmax", "aten::_softmax_backward_data")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::convolution", "aten::mkldnn_convolution",
                "aten::convolution_backward")),
    ("copies and casts", ("aten::copy_", "aten::_to_copy")),
    ("layer norm", ("aten::native_layer_norm", "aten::native_layer_norm_backward")),
    ("optimiser", ("aten::_fused_adamw_",)),
)


def group_of(name: str) -> str:
    for group, names in CATEGORIES:
        if name in names or (group == "attention" and name.startswith(names[0])):
            return group
    return "other"


def profile_shares(step, dtype: torch.dtype) -> dict[str, dict[str, float]]:
    """Where one step's time goes (the step is run twice first): per operator group, its share of
    the CPU self time and, where the group does model FLOPs, the FLOP/s its own kernels reach as a
    share of the 2048² matmul timed just before and after the profiled step (this machine's speed
    drifts between minutes, so the peak of the timing rounds is not used here) — the matmul group's
    share of peak is the ceiling MFU would reach if nothing but matmuls took time."""
    from torch.profiler import ProfilerActivity, profile

    matmul, matmul_flops = matmul_contender(dtype)
    step()
    with flop_counter() as counter:
        step()
    flops: dict[str, float] = {}
    for operator, count in counter.get_flop_counts()["Global"].items():
        group = group_of(f"aten::{getattr(operator, '__name__', str(operator)).split('.')[0]}")
        flops[group] = flops.get(group, 0.0) + count
    before = median_seconds(matmul, 3)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    peak = matmul_flops / ((before + median_seconds(matmul, 3)) / 2)
    seconds: dict[str, float] = {}
    for event in profiler.key_averages():
        group = group_of(event.key)
        seconds[group] = seconds.get(group, 0.0) + event.self_cpu_time_total / 1e6
    whole = sum(seconds.values())
    return {group: {"share": seconds.get(group, 0.0) / whole,
                    **({"flops_per_s": flops[group] / seconds[group], "share_of_peak": flops[group] / seconds[group] / peak}
                       if flops.get(group) and seconds.get(group) else {})}
            for group, _ in (*CATEGORIES, ("other", ()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny (b32) and base (b8), fp32 and bf16, 3 repeats")
    parser.add_argument("--sizes", default="tiny,base")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch", type=int, help="override every size's default batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time maekit under torch.compile")
    parser.add_argument("--profile", action="store_true", help="also break each step's time down by operator group")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.profile and device != "cpu":
        parser.error("--profile reads CPU operator times; on a GPU use torch.profiler with CUDA activities")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    results = {"machine": machine_description(), "device": device, "runs": []}
    peaks: dict[str, list[float]] = {}
    header = f"{'size':6} {'prec':5} {'batch':>5} {'contender':14} {'samples/s':>10} {'GFLOP/step':>11} {'MFU':>6}"
    print(header)
    for size in args.sizes.split(","):
        batch = args.batch or SIZES[size][3]
        for precision in args.precisions.split(","):
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
            torch.manual_seed(0)
            images = torch.randn(batch, 3, 224, 224, device=device)
            contenders = {"maekit": build_maekit(size, False).to(device),
                          "transformers": build_transformers(size).to(device)}
            if args.compile:
                contenders["maekit+compile"] = build_maekit(size, True).to(device)
            steps = {name: make_step("maekit" if name.startswith("maekit") else name, model, images, dtype,
                                     fused=name.startswith("maekit"))
                     for name, model in contenders.items()}
            medians, flops, peak = timed_steps(steps, dtype, device, args.repeats, sync)
            peaks.setdefault(precision, []).append(peak)
            for name in steps:
                seconds = medians[name]
                run = {"size": size, "precision": precision, "batch": batch, "contender": name,
                       "seconds_per_step": seconds, "samples_per_s": batch / seconds, "flops_per_step": flops[name],
                       "matmul_peak_flops": peak, "mfu": flops[name] / seconds / peak}
                if args.profile:
                    run["time_shares"] = profile_shares(steps[name], dtype)
                results["runs"].append(run)
                print(f"{size:6} {precision:5} {batch:5d} {name:14} {run['samples_per_s']:10.2f} "
                      f"{flops[name] / 1e9:11.1f} {run['mfu']:6.1%}")
                if args.profile:
                    print(" " * 20 + ", ".join(
                        f"{group} {part['share']:.0%}" + (f" ({part['share_of_peak']:.0%} of peak)" if "share_of_peak" in part else "")
                        for group, part in run["time_shares"].items()))
            ours = next(r for r in results["runs"][-len(steps):] if r["contender"] == "maekit")
            theirs = next(r for r in results["runs"][-len(steps):] if r["contender"] == "transformers")
            print(f"{'':6} {'':5} {'':5} ratio maekit/transformers: {ours['samples_per_s'] / theirs['samples_per_s']:.2f}x")
    results["matmul_peak_flops"] = {precision: max(values) for precision, values in peaks.items()}
    print("matmul peak (2048², median of the same rounds, per size): "
          + "; ".join(f"{k} " + ", ".join(f"{v / 1e9:.0f}" for v in values) + " GFLOP/s" for k, values in peaks.items()))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
