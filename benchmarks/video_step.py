"""VideoMAE pre-training step (forward + backward + fused AdamW; 16 frames × 224², tubelet 2,
patch 16, tube masking 0.9, norm-pix target): maekit-video's `videomae` against transformers'
`VideoMAEForPreTraining` at the same size and precision, measured side by side in one process
(contenders alternate every repeat; the median is reported).

    python benchmarks/video_step.py --quick          # ViT-S batch 2, fp32 and bf16, 3 repeats
    python benchmarks/video_step.py --sizes base --batch 1 --precisions bf16

Both get the same optimiser (fused AdamW). transformers' model takes its mask as an argument
(``bool_masked_pos``, made by VideoMAE's `TubeMaskingGenerator` in the loader): it is given one
tube mask drawn once, outside the timing, by maekit's own tube masker (the same rule and token
order, as the parity test checks); maekit draws its own inside the step (a per-sample argsort of
196 numbers: negligible). Reports clips/s, the ratio, model
FLOPs per step (torch's FLOP counter) and MFU against a 2048² matmul timed in the same rounds.
Needs maekit-video installed. For how fast clips decode against this step see `video_loader.py`.
"""
from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, method_loss, timed_steps, training_step  # noqa: E402

SIZES = {  # name: encoder (width, depth, heads), decoder (width, heads) as VideoMAE's, default batch
    "small": ((384, 12, 6), (192, 3), 2),
    "base": ((768, 12, 12), (384, 6), 1),
}
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build_maekit(size: str, frames: int, img_size: int, mask_ratio: float) -> torch.nn.Module:
    from maekit.registry import build

    return build("model", dict(type="videomae", size=size, num_frames=frames, img_size=img_size,
                               mask_ratio=mask_ratio, masking="tube"))


def build_transformers(size: str, frames: int, img_size: int) -> torch.nn.Module:
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    (width, depth, heads), (decoder_width, decoder_heads), _ = SIZES[size]
    config = VideoMAEConfig(image_size=img_size, patch_size=16, num_channels=3, num_frames=frames, tubelet_size=2,
                            hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                            intermediate_size=4 * width, decoder_hidden_size=decoder_width, decoder_num_hidden_layers=4,
                            decoder_num_attention_heads=decoder_heads, decoder_intermediate_size=4 * decoder_width,
                            layer_norm_eps=1e-6, use_mean_pooling=False, norm_pix_loss=True, qkv_bias=True,
                            attn_implementation="sdpa")
    return VideoMAEForPreTraining(config)


def transformers_loss(model: torch.nn.Module, frames_first: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return model(frames_first, bool_masked_pos=masks).loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ViT-S, fp32 and bf16, 3 repeats")
    parser.add_argument("--sizes", default="small")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch", type=int, help="override every size's default batch")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--mask-ratio", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    precisions = args.precisions.split(",")
    results = {"machine": machine_description(), "device": device, "frames": args.frames, "img_size": args.img_size,
               "mask_ratio": args.mask_ratio, "runs": []}
    print(f"{'size':6} {'prec':5} {'batch':>5} {'contender':13} {'clips/s':>8} {'GFLOP/step':>11} {'MFU':>6}")
    for size in args.sizes.split(","):
        batch = args.batch or SIZES[size][2]
        generator = torch.Generator().manual_seed(0)
        clips = torch.randn(batch, 3, args.frames, args.img_size, args.img_size, generator=generator).to(device)
        frames_first = clips.transpose(1, 2).contiguous()  # transformers' (B, T, C, H, W)
        for precision in precisions:
            torch.manual_seed(0)
            ours = build_maekit(size, args.frames, args.img_size, args.mask_ratio).to(device)
            theirs = build_transformers(size, args.frames, args.img_size).to(device)
            with torch.no_grad():
                masks = ours.make_mask(ours.tokenize(clips)).masked.bool()
            steps = {"maekit": training_step(ours, partial(method_loss, ours, clips), PRECISIONS[precision], device),
                     "transformers": training_step(theirs, partial(transformers_loss, theirs, frames_first, masks),
                                                   PRECISIONS[precision], device)}
            medians, flops, peak = timed_steps(steps, PRECISIONS[precision], device, args.repeats, sync)
            runs = []
            for name, seconds in medians.items():
                run = {"size": size, "precision": precision, "batch": batch, "contender": name,
                       "seconds_per_step": seconds, "clips_per_s": batch / seconds, "flops_per_step": flops[name],
                       "matmul_peak_flops": peak, "mfu": flops[name] / seconds / peak}
                runs.append(run)
                print(f"{size:6} {precision:5} {batch:5d} {name:13} {run['clips_per_s']:8.2f} "
                      f"{flops[name] / 1e9:11.1f} {run['mfu']:6.1%}")
            print(f"{'':18} ratio maekit/transformers: {medians['transformers'] / medians['maekit']:.2f}x; "
                  f"matmul peak {peak / 1e9:.0f} GFLOP/s")
            results["runs"].extend(runs)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
