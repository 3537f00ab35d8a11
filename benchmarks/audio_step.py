"""Audio-MAE pre-training step against the same ViT trained without masking, then the data side.

The step (forward + backward + fused AdamW), contenders alternating every repeat, median reported:
- Audio-MAE as released: mask 0.8, the local (shifted-window) decoder of 16 blocks;
- Audio-MAE with the global decoder (8 plain blocks), the paper's ablation;
- the same ViT encoder over every patch (no masking, no mixup): Audio-MAE's fine-tuning
  classifier with 527 AudioSet classes — what a step of this ViT costs without MAE's masking.

The data side: 10-s clips written here as 16-kHz WAV and FLAC (procedural signals: chirps and
noise, made with numpy and soundfile — decode cost does not depend on content), read by
maekit-audio's `audio_folder` and turned into Kaldi filterbanks by its `audio_fbank` front end,
through a DataLoader with 0, 1 and 2 workers (`data_loader.view_samples_per_s`, shuffled):
filterbanks/s against the clips/s of the step.

    python benchmarks/audio_step.py --quick       # ViT-B over 1024×128 filterbanks, batch 2
    python benchmarks/audio_step.py --tiny        # the demo's model and 128×64 filterbanks

Reports clips/s, each contender's time relative to Audio-MAE's, FLOPs and MFU against a 2048² matmul
timed in the same alternating rounds. Needs maekit-audio installed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, method_loss, timed_steps, training_step  # noqa: E402
from data_loader import view_samples_per_s  # noqa: E402

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
FULL = dict(size="base", target_length=1024, num_mel_bins=128, patch_size=16)
TINY = dict(size=None, encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=128, depth=4, num_heads=4),
            target_length=128, num_mel_bins=64, patch_size=8, decoder_embed_dim=128, decoder_depth=4,
            decoder_num_heads=4, window_size=(4, 4), shift_size=(2, 0))  # as audio_mae_demo


def contenders(model_cfg: dict) -> dict[str, torch.nn.Module]:
    from maekit.registry import build

    torch.manual_seed(0)
    local = build("model", dict(type="audio_mae", decoder_mode="local", **model_cfg))
    global_cfg = {**model_cfg, "decoder_depth": 8 if model_cfg.get("size") else model_cfg["decoder_depth"]}
    torch.manual_seed(0)
    global_decoder = build("model", dict(type="audio_mae", decoder_mode="global", **global_cfg))
    classifier = build("model", dict(type="audio_classifier", model=dict(type="audio_mae", **model_cfg),
                                     num_classes=527, multi_label=True, drop_path_rate=0.0, mask_t_prob=0.0,
                                     mask_f_prob=0.0, mixup=0.0))
    return {"audio_mae (local decoder)": local, "audio_mae (global decoder)": global_decoder,
            "ViT, no masking": classifier}


def write_clips(root: Path, count: int, suffix: str, seconds: float = 10.0, rate: int = 16000) -> None:
    import soundfile

    generator = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for index in range(count):
        low, high = generator.uniform(100, 4000, size=2)
        chirp = np.sin(2 * np.pi * (low + (high - low) * t / (2 * seconds)) * t)
        signal = 0.3 * chirp + 0.05 * generator.standard_normal(len(t))
        soundfile.write(root / f"clip_{index:03d}{suffix}", signal.astype(np.float32), rate)


class Filterbanks(torch.utils.data.Dataset):
    """An audio folder's clips as the model's input: waveform → normalised log-mel filterbank."""

    def __init__(self, folder, frontend) -> None:
        self.folder, self.frontend = folder, frontend

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frontend(self.folder[index]["inputs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 4 loader batches per setting")
    parser.add_argument("--tiny", action="store_true", help="the demo's model and 128×64 filterbanks")
    parser.add_argument("--batch", type=int, help="step batch (default 2, or 32 with --tiny)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loader-batches", type=int, default=8)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.loader_batches = 3, 4
    model_cfg = TINY if args.tiny else FULL
    batch = args.batch or (32 if args.tiny else 2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    precisions = args.precisions.split(",")
    results = {"machine": machine_description(), "device": device, "batch": batch,
               "input": [model_cfg["target_length"], model_cfg["num_mel_bins"]], "runs": [], "loader": []}

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 1, model_cfg["target_length"], model_cfg["num_mel_bins"], generator=generator)
    labels = (torch.rand(batch, 527, generator=generator) < 0.01).float()
    batch_of = {"inputs": inputs.to(device), "label": labels.to(device)}
    print(f"{'prec':5} {'contender':28} {'clips/s':>8} {'vs local':>9} {'GFLOP/step':>11} {'MFU':>6}")
    for precision in precisions:
        models = {name: model.to(device) for name, model in contenders(model_cfg).items()}
        steps = {name: training_step(model, partial(method_loss, model, batch_of), PRECISIONS[precision], device)
                 for name, model in models.items()}
        medians, flops, peak = timed_steps(steps, PRECISIONS[precision], device, args.repeats, sync)
        reference = medians["audio_mae (local decoder)"]
        for name, seconds in medians.items():
            run = {"precision": precision, "contender": name, "seconds_per_step": seconds, "clips_per_s": batch / seconds,
                   "relative_time": seconds / reference, "flops_per_step": flops[name], "matmul_peak_flops": peak,
                   "mfu": flops[name] / seconds / peak}
            results["runs"].append(run)
            print(f"{precision:5} {name:28} {run['clips_per_s']:8.2f} {run['relative_time']:8.2f}x "
                  f"{flops[name] / 1e9:11.1f} {run['mfu']:6.1%}")
    fastest_step = max(run["clips_per_s"] for run in results["runs"] if run["contender"].startswith("audio_mae"))

    from maekit.registry import build

    frontend = build("transform", dict(type="audio_fbank", num_mel_bins=model_cfg["num_mel_bins"],
                                       target_length=model_cfg["target_length"]))
    loader_batch = 4
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".wav", ".flac"):
            root = Path(folder) / suffix[1:]
            root.mkdir()
            write_clips(root, loader_batch * (args.loader_batches + 1), suffix)
            dataset = Filterbanks(build("dataset", dict(type="audio_folder", root=str(root))), frontend)
            for workers in (int(w) for w in args.workers.split(",")):
                rate = view_samples_per_s(dataset, workers, loader_batch, args.loader_batches)
                results["loader"].append({"format": suffix[1:], "workers": workers, "fbanks_per_s": rate,
                                          "times_fastest_pretraining_step": rate / fastest_step})
                print(f"10-s {suffix[1:]} → fbank {model_cfg['target_length']}×{model_cfg['num_mel_bins']}, "
                      f"{workers} workers: {rate:.1f}/s ({rate / fastest_step:.1f}× the fastest Audio-MAE step)")
    print("matmul peak (same rounds): " + ", ".join(f"{run['precision']} {run['matmul_peak_flops'] / 1e9:.0f} GFLOP/s"
                                                   for run in results["runs"][::len(steps)]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
