"""Audio-visual pre-training step (forward + backward + AdamW step): AV-MAE's encoder fusions side
by side (mid, the release's; early; late) and MAViL's stage 1 (two masked views per clip), same
sizes, measured in one process (contenders alternate every repeat; the median is reported). Then
the data side: how many paired clips per second one loader process decodes (H.264 frames + AAC
track + filterbank), against the clips per second the step consumes.

    python benchmarks/audiovisual_step.py --quick        # the demo's size (8×32² clips, 96×64 spectrograms), batch 32
    python benchmarks/audiovisual_step.py --size small   # ViT-S, 16×224² clips, 992×128 spectrograms, batch 2

Reports clips/s and each contender's time relative to AV-MAE with mid fusion.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, batch_step, machine_description  # noqa: E402

SIZES = {  # name: input settings, encoder, decoder, joint blocks, batch
    "demo": (dict(num_frames=8, img_size=32, patch_size=4, audio_patch_size=8, audio_frames=96, num_mel_bins=64),
             dict(embed_dim=128, depth=4, num_heads=4), dict(embed_dim=64, depth=2, num_heads=4), 1, 32),
    "small": (dict(num_frames=16, img_size=224, patch_size=16, audio_frames=992, num_mel_bins=128),
              dict(embed_dim=384, depth=12, num_heads=6), dict(embed_dim=256, depth=4, num_heads=8), 2, 2),
}
CONTENDERS = {"av_mae_mid": ("av_mae", "mid"), "av_mae_early": ("av_mae", "early"), "av_mae_late": ("av_mae", "late"),
              "mavil": ("mavil", "mid")}


def build(name: str, size: str) -> torch.nn.Module:
    from maekit.registry import build as build_component

    inputs, encoder, decoder, joint, _ = SIZES[size]
    method, fusion = CONTENDERS[name]
    ratios = dict(audio_mask_ratio=0.7, video_mask_ratio=0.9) if method == "av_mae" else dict(mask_ratio=0.8)
    return build_component("model", dict(type=method, size=None, encoder=encoder, decoder=decoder, fusion=fusion,
                                         joint_depth=joint, **inputs, **ratios))


def decode_rate(samples: int) -> float:
    """Paired clips per second one process reads from the demo's .mp4 files (frames, audio track,
    filterbank, the video transform)."""
    from maekit.data.views import AugmentedView

    view = AugmentedView(dict(type="av_demo_talking_digits", split="train"),
                         dict(type="videomae_augment", size=32, scales=(1.0, 0.875), mean=(0.5,) * 3, std=(0.5,) * 3))
    view[0]  # the demo's files exist before timing
    started = time.perf_counter()
    for index in range(1, samples + 1):
        view[index]
    return samples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--quick", action="store_true", help="the demo's size, 5 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--decode", type=int, default=64, help="clips to decode for the loader figure (0: skip)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    size = "demo" if args.quick else args.size
    repeats = args.repeats or (5 if args.quick else 7)
    inputs, _, _, _, batch_size = SIZES[size]
    torch.manual_seed(0)
    batch = {"inputs": torch.randn(batch_size, 3, inputs["num_frames"], inputs["img_size"], inputs["img_size"]),
             "audio": torch.randn(batch_size, 1, inputs["audio_frames"], inputs["num_mel_bins"])}
    steps = {name: batch_step(build(name, size), batch) for name in CONTENDERS}
    seconds = alternating_medians(steps, repeats)
    figures = {"size": size, "batch": batch_size, "machine": machine_description(), "precision": "fp32",
               **{f"{name}_clips_per_s": batch_size / s for name, s in seconds.items()},
               **{f"{name}_time_vs_mid": s / seconds["av_mae_mid"] for name, s in seconds.items()}}
    for name, s in seconds.items():
        print(f"{name:13s} {batch_size / s:8.1f} clips/s   {s / seconds['av_mae_mid']:.2f}x AV-MAE (mid)'s step time")
    if args.decode and size == "demo":
        rate = decode_rate(args.decode)
        figures["decode_clips_per_s_one_process"] = rate
        print(f"decoding     {rate:8.1f} clips/s in one loader process (demo .mp4: H.264 + AAC + filterbank)")
    print(json.dumps(figures["machine"]))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
