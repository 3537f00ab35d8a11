"""Shared helpers for maekit's benchmarks: machine description, timing, matmul peak."""
from __future__ import annotations

import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable, Hashable, Mapping

import torch

__all__ = ["machine_description", "median_seconds", "alternating_medians", "matmul_contender", "count_flops", "flop_counter", "training_step",
           "method_loss", "timed_steps", "peak_rss_kib"]


def machine_description() -> dict:
    from maekit.engine.train import cpu_name

    description = {"cpu": cpu_name(), "cores": torch.get_num_threads(), "python": platform.python_version(),
                   "torch": torch.__version__, "platform": platform.platform()}
    if torch.cuda.is_available():
        description["gpu"] = torch.cuda.get_device_name(0)
    return description


def median_seconds(fn: Callable[[], None], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternating_medians(contenders: Mapping[Hashable, Callable[[], None]], repeats: int,
                        sync: Callable[[], None] = lambda: None) -> dict:
    """Median seconds per contender: one warm-up call each (allocation, compilation), then
    ``repeats`` rounds that run every contender once in turn, so machine noise hits all alike."""
    for run in contenders.values():
        run()
    times: dict = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            times[name].append(median_seconds(run, 1, sync))
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_contender(dtype: torch.dtype, device: str = "cpu", size: int = 2048) -> tuple[Callable[[], None], int]:
    """A square matmul in ``dtype`` and its FLOPs, to time *among* a benchmark's contenders: in the
    same alternating rounds the machine's noise (shared cores, clock changes — the peak measured
    once before a run moved 2-3x between runs here) hits the peak as it hits the steps, so MFU =
    step FLOPs / step time / (matmul FLOPs / matmul time) compares like with like."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    return (lambda: torch.mm(a, b)), 2 * size**3


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter():
    """torch's FLOP counter, taught the CPU flash-attention kernels it does not know (it counts
    CUDA's; on the CPU attention would count as zero — a third of VideoMAE's decoder work), with
    torch's own SDPA formulas."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops})


def count_flops(step: Callable[[], None]) -> int:
    """Model FLOPs of one call of ``step`` (see :func:`flop_counter`)."""
    with flop_counter() as counter:
        step()
    return counter.get_total_flops()


def peak_rss_kib(reset: bool = False) -> int:
    """This process's peak resident set (KiB). Linux carries ``ru_maxrss`` over fork and exec — a
    child would start at its parent's peak — so the peak (VmHWM) is reset first where the kernel
    allows it, and read back from /proc."""
    try:
        if reset:
            Path("/proc/self/clear_refs").write_text("5")
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM")))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def training_step(model: torch.nn.Module, loss_of: Callable[[], torch.Tensor], dtype: torch.dtype, device: str,
                  fused: bool = True) -> Callable[[], None]:
    """One training step for side-by-side timings: gradients cleared, ``loss_of()`` under bf16
    autocast when ``dtype`` is bf16, backward, AdamW with MAE's betas and weight decay (fused
    unless ``fused=False``: PyTorch's default, as transformers' users get)."""
    from contextlib import nullcontext

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.95),
                                  weight_decay=0.05, **({"fused": True} if fused else {}))
    bf16 = dtype == torch.bfloat16

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = loss_of()
        loss.backward()
        optimizer.step()

    return step


def method_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """A maekit method's total loss on one batch (the step's ``loss_of`` with ``functools.partial``)."""
    return model(batch)["loss"]


def timed_steps(steps: Mapping[Hashable, Callable[[], None]], dtype: torch.dtype, device: str, repeats: int,
                sync: Callable[[], None] = lambda: None) -> tuple[dict, dict, float]:
    """Median seconds and model FLOPs of each step, timed in alternating rounds beside a 2048² matmul
    in ``dtype`` (:func:`matmul_contender`), and that matmul's FLOP/s: MFU's denominator."""
    flops = {name: count_flops(step) for name, step in steps.items()}
    matmul, matmul_flops = matmul_contender(dtype, device)
    seconds = alternating_medians({**steps, "matmul": matmul}, repeats, sync)  # warm-up (and compilation) first
    return seconds, flops, matmul_flops / seconds.pop("matmul")


def batch_step(model: torch.nn.Module, batch: Mapping) -> Callable[[], None]:
    """One training step of a method on a batch mapping (forward, backward, AdamW as MAE's recipe),
    for side-by-side step timings."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(batch)["loss"].backward()
        optimizer.step()
    return step
