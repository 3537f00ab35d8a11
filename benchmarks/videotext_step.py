"""Video-text pre-training step (forward + backward + AdamW step): SimVTP against its SMAUG-style
sparse variant and against VideoMAE alone (the same video branch without the caption), same sizes,
measured side by side in one process (contenders alternate every repeat; the median is reported).

    python benchmarks/videotext_step.py --quick        # the demo's size (8×32² clips, 4×128 encoder), batch 32
    python benchmarks/videotext_step.py --size small   # ViT-S, 16×224² clips, tube 0.9, batch 2

Reports clips/s and each contender's time relative to SimVTP: what SimVTP's three extra encoder
passes (video alone, caption alone, the matching pairs) cost over VideoMAE, and what SMAUG's token
sparsification saves.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, batch_step, machine_description  # noqa: E402

CAPTIONS = ["a seven moving to the left", "the digit 3 heading upward", "two drifting down",
            "a handwritten nine sliding towards the bottom"]
SIZES = {  # name: video settings, encoder, decoder, text length, batch
    "demo": (dict(num_frames=8, img_size=32, patch_size=4, tubelet_size=2, mask_ratio=0.75),
             dict(embed_dim=128, depth=4, num_heads=4), (64, 2, 4), 24, 32, dict(layer=2)),
    "small": (dict(num_frames=16, img_size=224, patch_size=16, tubelet_size=2, mask_ratio=0.9),
              dict(embed_dim=384, depth=12, num_heads=6), (192, 4, 3), 32, 2, dict(layer=6)),
}


def build(method: str, size: str) -> torch.nn.Module:
    from maekit.registry import build as build_component

    video, encoder, (dim, depth, heads), length, _, sparsifier = SIZES[size]
    common = dict(size=None, encoder=encoder, decoder_embed_dim=dim, decoder_depth=depth, decoder_num_heads=heads, **video)
    if method == "videomae":
        return build_component("model", dict(type="videomae", **common))
    options = dict(sparsifier=sparsifier) if method == "smaug" else {}
    model = build_component("model", dict(type=method, text=dict(vocab_size=256, max_length=length), **common, **options))
    model.tokenizer.fit([CAPTIONS])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--quick", action="store_true", help="the demo's size, 5 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    size = "demo" if args.quick else args.size
    repeats = args.repeats or (5 if args.quick else 7)
    video, _, _, _, batch_size, _ = SIZES[size]
    torch.manual_seed(0)
    clips = torch.randn(batch_size, 3, video["num_frames"], video["img_size"], video["img_size"])
    batch = {"inputs": clips, "caption": [CAPTIONS[i % len(CAPTIONS)] for i in range(batch_size)]}
    steps = {name: batch_step(build(name, size), batch) for name in ("simvtp", "smaug", "videomae")}
    seconds = alternating_medians(steps, repeats)
    figures = {"size": size, "batch": batch_size, "machine": machine_description(), "precision": "fp32",
               **{f"{name}_clips_per_s": batch_size / s for name, s in seconds.items()},
               **{f"{name}_time_vs_simvtp": s / seconds["simvtp"] for name, s in seconds.items()}}
    for name, s in seconds.items():
        print(f"{name:9s} {batch_size / s:8.1f} clips/s   {s / seconds['simvtp']:.2f}x SimVTP's step time")
    print(json.dumps(figures["machine"]))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
