"""Attention under bf16 autocast: maekit's blocks (attention in float32 on the CPU, see
maekit.nn.attention) against the same timm blocks attending in bf16, at the MAE step's
shapes — the encoder over the visible quarter (1 + 49 tokens) and the 512-wide decoder over all
197 tokens. Forward + backward of one block, measured side by side in one process (alternating,
median), plus each one's error against the float32 block.

    python benchmarks/attention.py --quick
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from timm.layers import Attention as TimmAttention

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description  # noqa: E402

SHAPES = {  # name: (batch, tokens, width, heads)
    "tiny encoder b32": (32, 50, 192, 3),
    "tiny decoder b32": (32, 197, 512, 16),
    "base encoder b8": (8, 50, 768, 12),
    "base decoder b8": (8, 197, 512, 16),
}


def block_pair(width: int, heads: int) -> dict[str, torch.nn.Module]:
    from maekit.nn.encoder import make_blocks

    ours = make_blocks(width, 1, heads)
    theirs = make_blocks(width, 1, heads)
    theirs[0].attn = TimmAttention(width, heads, qkv_bias=True)  # timm's: scaled_dot_product_attention in bf16
    theirs.load_state_dict(ours.state_dict())
    return {"maekit (fp32 attention)": ours, "timm (bf16 attention)": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, help="override every shape's batch")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    results = {"machine": machine_description(), "device": device, "runs": []}
    print(f"{'shape':18} {'maekit ms':>10} {'timm ms':>9} {'speed-up':>9} {'error maekit':>13} {'error timm':>11}")
    for name, (batch, tokens, width, heads) in SHAPES.items():
        batch = args.batch or batch
        torch.manual_seed(0)
        blocks = {label: module.to(device) for label, module in block_pair(width, heads).items()}
        x = torch.randn(batch, tokens, width, device=device)
        with torch.no_grad():
            exact = next(iter(blocks.values()))(x)

        def step(module: torch.nn.Module, x: torch.Tensor = x):
            def run() -> None:
                with torch.autocast(device, dtype=torch.bfloat16):
                    out = module(x)
                out.float().sum().backward()
            return run

        medians = alternating_medians({label: step(module) for label, module in blocks.items()}, repeats, sync)
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
            errors = {label: (module(x).float() - exact).abs().mean().item() for label, module in blocks.items()}
        ours, theirs = medians["maekit (fp32 attention)"], medians["timm (bf16 attention)"]
        results["runs"].append({"shape": name, "seconds": medians, "mean_abs_error_vs_fp32": errors})
        print(f"{name:18} {ours * 1e3:10.1f} {theirs * 1e3:9.1f} {theirs / ours:8.2f}x "
              f"{errors['maekit (fp32 attention)']:13.2e} {errors['timm (bf16 attention)']:11.2e}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
