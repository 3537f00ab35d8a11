"""Does video decoding keep up with the VideoMAE step? Clips of 16 frames at 224² (VideoMAE's K400
input: stride 4 from 320×240 H.264 videos of 10 s at 30 fps, short side as Kinetics is commonly
pre-resized, multi-scale crop, normalisation, per-sample seeding) through a DataLoader with 0, 1
and 2 workers, against the VideoMAE ViT-S training step (tube masking 0.9) measured in the same run;
PyAV with and without seeking, and torchcodec (the optional reader) where it is installed.

    python benchmarks/video_loader.py --quick

The videos are written here with PyAV (H.264, 320×240, moving patterns from scikit-image's bundled
photographs) into a temporary folder; nothing is downloaded. Needs maekit-video installed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402
from data_loader import step_samples_per_s, view_samples_per_s  # noqa: E402


def write_videos(root: Path, count: int, seconds: float = 10.0, fps: int = 30) -> Path:
    """``count`` H.264 videos (320×240) panning across a bundled photograph, and a train.csv."""
    import skimage.data
    from maekit_video.io import write_video
    from PIL import Image

    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((640, 480)))
    lines = []
    for number in range(count):
        frames = np.stack([np.roll(photo, 3 * t + 17 * number, axis=1)[120:360, 160:480]
                           for t in range(int(seconds * fps))])
        path = write_video(root / f"v{number}.mp4", frames, fps=fps, crf=23)
        lines.append(f"{path} {number % 2}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root / "train.csv"


def loader_clips_per_s(listing: Path, workers: int, batch: int, batches: int, seek: bool, decoder: str) -> float:
    from maekit.data.views import AugmentedView

    view = AugmentedView(dict(type="video_list", list_file=str(listing), seek=seek, decoder=decoder,
                              clip=dict(sampling="consecutive", num_frames=16, stride=4)),
                         dict(type="videomae_augment", size=224))
    return view_samples_per_s(view, workers, batch, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 loader batches per setting, 3 step repeats")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.batches = 4
    results = {"machine": machine_description(), "batch": args.batch, "loader": []}
    from maekit_video.io import check_decoder

    workers = [int(w) for w in args.workers.split(",")]
    settings = [("pyav", True, w) for w in workers] + [("pyav", False, 0)]  # no seek: once, for the ratio
    try:
        settings += [("torchcodec", True, w) for w in workers]
        check_decoder("torchcodec")
    except ValueError as error:
        settings = [setting for setting in settings if setting[0] == "pyav"]
        print(f"torchcodec not measured: {error}")
    with tempfile.TemporaryDirectory() as folder:
        listing = write_videos(Path(folder), 8)
        for decoder, seek, count in settings:
            rate = loader_clips_per_s(listing, count, args.batch, args.batches, seek, decoder)
            results["loader"].append({"decoder": decoder, "workers": count, "seek": seek, "clips_per_s": rate})
    from maekit.registry import build

    torch.manual_seed(0)
    model = build("model", dict(type="videomae", size="small"))
    clips = torch.randn(args.batch, 3, 16, 224, 224)
    results["step_clips_per_s"] = step_samples_per_s(model, clips)
    fastest = max(results["step_clips_per_s"].values())
    print(f"VideoMAE ViT-S step (16×224², tube 0.9), batch {args.batch}: " + ", ".join(
        f"{p} {v:.2f} clips/s" for p, v in results["step_clips_per_s"].items()))
    print(f"{'decoder':>10} {'workers':>8} {'seek':>5} {'loader clips/s':>15} {'loader / fastest step':>22}")
    for row in results["loader"]:
        print(f"{row['decoder']:>10} {row['workers']:8d} {str(row['seek']):>5} {row['clips_per_s']:15.2f} "
              f"{row['clips_per_s'] / fastest:21.2f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
