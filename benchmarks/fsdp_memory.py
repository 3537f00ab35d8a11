"""What FSDP saves per process: the same MAE pre-training steps under DDP and under
``strategy="fsdp"`` (maekit.engine.fsdp), each on 2 processes (gloo on CPU, NCCL on GPU), with
every rank's resident parameters and optimiser state, its peak memory and the step time.

    python benchmarks/fsdp_memory.py --quick          # ViT-B MAE (112 M parameters), 224², batch 2 per rank

Each run is ``torchrun --nproc-per-node 2 -m maekit.cli train`` of core's ``mae_vit_base_in1k`` on
the bundled digits (upsampled to 224², 3 channels: what is read does not matter here); a hook this
script registers (``custom_imports``) writes each rank's figures after the last step.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

HERE = Path(__file__).resolve().parent


@HOOKS.register_module(name="BenchmarkRankMemory", force=True)
class RankMemory(Hook):
    """Writes ``rank<R>.json``: bytes of this rank's local parameters and optimiser state (a
    DTensor counts its local shard; gradients, freed after every step, take what the parameters
    take while they live), peak RSS (CPU) or peak CUDA memory, step seconds."""

    def __init__(self, out: str) -> None:
        self.out, self.times = Path(out), []

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        import time

        self.started = time.perf_counter()

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        import time

        self.times.append(time.perf_counter() - self.started)

    def after_train(self, runner: Any) -> None:
        import torch
        import torch.distributed as dist

        def local_bytes(tensor: Any) -> int:
            tensor = tensor.to_local() if hasattr(tensor, "to_local") else tensor
            return tensor.numel() * tensor.element_size()

        params = [p for p in runner.model.parameters()]
        state = runner.optim_wrapper.optimizer.state.values()
        status = Path("/proc/self/status").read_text().splitlines()
        peak_rss = int(next(line.split()[1] for line in status if line.startswith("VmHWM"))) * 1024
        figures = {
            "parameters_bytes": sum(local_bytes(p) for p in params),
            "optimizer_state_bytes": sum(local_bytes(v) for s in state for v in s.values() if torch.is_tensor(v)),
            "peak_rss_bytes": peak_rss,
            "peak_cuda_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
            "step_seconds_median": sorted(self.times[1:])[len(self.times[1:]) // 2] if len(self.times) > 1 else None,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{dist.get_rank()}.json").write_text(json.dumps(figures))


def run(strategy: str, work: Path, iters: int, batch: int, device: str) -> list[dict]:
    from maekit.configs import CONFIG_DIR

    out = work / f"{strategy}_figures"
    config = work / f"{strategy}.py"  # custom_imports act when a config file is read, not as an override
    config.write_text(f"_base_ = [{str(CONFIG_DIR / 'mae_vit_base_in1k.py')!r}]\n"
                      "custom_imports = dict(imports=['fsdp_memory'])\n"
                      f"custom_hooks = [dict(type='BenchmarkRankMemory', out={str(out)!r})]\n")
    options = [f"strategy={strategy}", f"schedule.max_iters={iters}", "schedule.warmup_iters=1",
               f"checkpoint_interval={iters}", f"data.batch_size={batch}", "data.num_workers=0", "log_interval=1",
               "data.dataset={'_delete_': True, 'type': 'digits', 'split': 'train', 'size': 224, 'channels': 3}"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
               "-m", "maekit.cli", "train", str(config), "--work-dir", str(work / strategy), "--device", device,
               "--launcher", "pytorch", "--cfg-options", *options]
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{strategy} run failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 steps of batch 2 per rank")
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.iters, args.batch = 4, 2
    sys.path.insert(0, str(HERE))
    from common import machine_description

    results: dict[str, Any] = {"machine": machine_description(), "iters": args.iters, "batch_per_rank": args.batch}
    with tempfile.TemporaryDirectory() as folder:
        for strategy in ("ddp", "fsdp"):
            results[strategy] = run(strategy, Path(folder), args.iters, args.batch, args.device)
    mib = 2**20
    print(f"MAE ViT-B, 224², batch {args.batch} per rank, 2 processes ({args.device}); per rank (rank 0 / rank 1):")
    for key in ("parameters_bytes", "optimizer_state_bytes", "peak_rss_bytes", "peak_cuda_bytes"):
        if results["ddp"][0][key] is None:
            continue
        ddp, fsdp = ([rank[key] / mib for rank in results[strategy]] for strategy in ("ddp", "fsdp"))
        print(f"  {key[:-6]:<16} DDP {ddp[0]:7.0f} / {ddp[1]:7.0f} MiB   FSDP {fsdp[0]:7.0f} / {fsdp[1]:7.0f} MiB"
              f"   ratio {fsdp[0] / ddp[0]:.2f}")
    steps = [results[strategy][0]["step_seconds_median"] for strategy in ("ddp", "fsdp")]
    print(f"  step (median)    DDP {steps[0]:.2f} s   FSDP {steps[1]:.2f} s   ratio {steps[1] / steps[0]:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
