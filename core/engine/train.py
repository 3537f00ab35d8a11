"""From a maekit config to mmengine's Runner, and training with it.

A maekit config is an mmengine ``Config`` (``_base_`` inheritance, ``--cfg-options`` overrides)
with a few short sections that :func:`runner_config` expands into a full Runner config:

``model``     the method, e.g. ``dict(type="mae", size="base")``
``data``      ``dataset``, ``transform``, ``batch_size`` (per process), ``num_workers``; a ``shards``
              dataset (WebDataset tars) trains as a stream, resumed at its cursor
              (:mod:`maekit.data.streaming`, :mod:`maekit.engine.streaming`)
``schedule``  ``max_iters``, ``warmup_iters``, ``blr``, ``weight_decay``, ``betas``,
              ``accumulate`` (gradient accumulation), ``clip_grad`` (max norm or None),
              ``nonfinite`` ("stop"/"skip"), ``min_lr``, ``iters_per_epoch`` (what an epoch is for
              teachers' and loss weights' schedules; default len(dataset) // global batch)
              ``fused`` (fused AdamW, default True)
``checkpoint_interval``, ``max_keep_checkpoints``, ``log_interval``, ``seed``, ``strategy`` ("ddp" or "fsdp":
:mod:`maekit.engine.fsdp`),
``compile`` (False, True or ``torch.compile`` options: compiles the method's forward in place),
``find_unused_parameters`` (DDP for a method whose pass leaves some parameters without gradients)

Any full mmengine key in the config (``train_dataloader``, ``optim_wrapper``, ...) wins over the
expansion.
"""
from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

from mmengine.config import Config

from maekit.engine.schema import check_config_keys

_RUN_COUNTER = itertools.count()

__all__ = ["load_config", "runner_config", "build_runner", "train", "effective_lr", "cpu_name", "cpu_has_native_bf16"]


def effective_lr(blr: float, batch_size: int, accumulate: int, world_size: int) -> float:
    """The MAE scaling rule: lr = blr × effective batch / 256."""
    return blr * batch_size * accumulate * world_size / 256


def load_config(config: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """A config file, or the name of one a plugin contributes (``maekit configs``)."""
    from maekit.configs import find_config

    path = find_config(config)
    try:
        cfg = Config.fromfile(str(path))
    except SyntaxError as error:
        raise ValueError(f"{path}: not a valid config file: {error.msg} at line {error.lineno}") from None
    except (NameError, ImportError, AttributeError, KeyError) as error:  # what a config file's code can raise
        raise ValueError(f"{path}: the config file fails to load: {type(error).__name__}: {error}") from None
    if overrides:
        cfg.merge_from_dict(overrides)
    check_config_keys(cfg.to_dict(), str(path))
    return cfg


def runner_config(cfg: Config, work_dir: str | Path, amp: str = "off", seed: int | None = None,
                  resume: str | None = None, launcher: str = "none") -> Config:
    """Expand a maekit config into the full config mmengine's Runner takes."""
    seed = int(cfg.get("seed", 0) if seed is None else seed)
    data, schedule = dict(cfg.get("data", {})), dict(cfg.get("schedule", {}))
    for section, keys in (("data", ("dataset", "batch_size")), ("schedule", ("max_iters",))):
        missing = [k for k in keys if k not in (data if section == "data" else schedule)]
        if missing and "train_dataloader" not in cfg:
            raise ValueError(f"config {cfg.filename}: '{section}' needs {missing}")
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if launcher != "none" else 1
    batch_size, accumulate = int(data.get("batch_size", 1)), int(schedule.get("accumulate", 1))
    max_iters = int(schedule.get("max_iters", 1))
    warmup = int(schedule.get("warmup_iters", 0))
    if max_iters < 1:
        raise ValueError(f"schedule.max_iters must be at least 1, got {max_iters}")
    if warmup < 0:
        raise ValueError(f"schedule.warmup_iters must be >= 0, got {warmup}")
    warmup = min(warmup, max_iters - 1)  # a config shortened from the command line: see warmup_note
    lr = effective_lr(float(schedule.get("blr", 1.5e-4)), batch_size, accumulate, world_size)
    if amp not in ("off", "bf16", "fp16"):
        raise ValueError(f"amp must be off, bf16 or fp16, got {amp!r}")
    if amp == "fp16":
        wrapper = dict(type="AmpOptimWrapper", dtype="float16")
    else:
        wrapper = dict(type="MaekitOptimWrapper", nonfinite=schedule.get("nonfinite", "stop"),
                       autocast_dtype="bfloat16" if amp == "bf16" else None)
    wrapper.update(
        # fused AdamW: one kernel over all parameters instead of a loop of small ops per tensor
        optimizer=dict(type="AdamW", lr=lr, betas=tuple(schedule.get("betas", (0.9, 0.95))),
                       weight_decay=float(schedule.get("weight_decay", 0.05)), fused=bool(schedule.get("fused", True))),
        paramwise_cfg=schedule.get("paramwise_cfg", {}),
        constructor=schedule.get("constructor", "MaekitNoDecayConstructor"),
        accumulative_counts=accumulate,
    )
    if schedule.get("clip_grad"):
        wrapper["clip_grad"] = dict(max_norm=float(schedule["clip_grad"]))
    schedulers = [dict(type="MaekitWarmupCosineLR", warmup_iters=warmup, max_iters=max_iters,
                       min_lr=float(schedule.get("min_lr", 0.0)))]
    interval = int(cfg.get("checkpoint_interval", max_iters))
    strategy = cfg.get("strategy", "ddp")
    expanded = dict(
        model=dict(type="MaekitRunnerModel", model=cfg.model, seed=seed, compile=cfg.get("compile", False)),
        work_dir=str(work_dir),
        # unique even for runs started within the same second (mmengine keys its loggers by it)
        experiment_name=f"{Path(work_dir).name}_{time.strftime('%Y%m%d_%H%M%S')}_{next(_RUN_COUNTER)}_{os.getpid()}",
        train_dataloader=_train_dataloader(data, batch_size, seed),
        train_cfg=dict(type="MaekitStreamTrainLoop" if _streamed(data) else "IterBasedTrainLoop", max_iters=max_iters),
        optim_wrapper=wrapper,
        param_scheduler=schedulers,
        default_hooks=dict(
            logger=dict(type="LoggerHook", interval=int(cfg.get("log_interval", 10))),
            checkpoint=dict(type="MaekitCheckpointHook", interval=interval, by_epoch=False,
                            max_keep_ckpts=int(cfg.get("max_keep_checkpoints", 3)), save_last=True)),
        custom_hooks=[dict(type="MaekitThroughputHook"), dict(type="MaekitDataOnlyCheckpointHook"),
                      dict(type="MaekitTokenizerFitHook"),  # a no-op for a method without a trainable tokenizer
                      # loss_history.json + loss_curve.png in the work folder, with every checkpoint
                      dict(type="MaekitLossCurveHook", interval=interval),
                      # teachers and scheduled loss weights (no-ops for a method without them)
                      dict(type="MaekitLossWeightHook", iters_per_epoch=schedule.get("iters_per_epoch")),
                      dict(type="MaekitTeacherUpdateHook", iters_per_epoch=schedule.get("iters_per_epoch")),
                      *cfg.get("custom_hooks", [])],
        # every logged term (not only those named *loss*) is averaged over the window; lr is current
        log_processor=dict(by_epoch=False, window_size=int(cfg.get("log_interval", 10)), mean_pattern=r"^(?!.*lr$).*"),
        visualizer=dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend"),
                                                          dict(type="TensorboardVisBackend")]),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend=cfg.get("dist_backend", "nccl" if _cuda() else "gloo"))),
        randomness=dict(seed=seed, deterministic=False),
        launcher=launcher,
        log_level=cfg.get("log_level", "INFO"),  # maekit compare keeps the console to warnings
        # DDP over a method whose pass leaves some parameters without a gradient (TinyMIM's last block
        # beyond its attention relations): mmengine's CUDA wrapper reads this key
        find_unused_parameters=bool(cfg.get("find_unused_parameters", False)),
        resume=resume is not None,
        load_from=None if resume in (None, "auto") else str(resume),
    )
    if strategy == "fsdp":  # maekit.engine.fsdp: fully_shard (FSDP2) with sharded checkpoints
        expanded["model_wrapper_cfg"] = dict(type="MaekitFullyShardedModel")
    elif strategy == "ddp" and launcher != "none" and not _cuda():
        # mmengine pins DDP to cuda:LOCAL_RANK; a CPU module needs device_ids=None
        expanded["model_wrapper_cfg"] = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                                             find_unused_parameters=bool(cfg.get("find_unused_parameters", False)))
    elif strategy != "ddp":
        raise ValueError(f"strategy must be 'ddp' or 'fsdp', got {strategy!r}")
    passthrough = {k: v for k, v in cfg.to_dict().items() if k in expanded and k != "model" and k not in ("custom_hooks",)}
    expanded.update(passthrough)
    return Config(expanded)


def _streamed(data: dict) -> bool:
    """Whether ``data.dataset`` is WebDataset shards (``type="shards"``), trained as a stream."""
    dataset = data.get("dataset")
    return isinstance(dataset, dict) and str(dataset.get("type", "")).split(".")[-1] == "shards"


def _train_dataloader(data: dict, batch_size: int, seed: int) -> dict:
    """The training loader: a map-style dataset through the seeded sampler, or shards as a stream
    (no sampler: the stream splits itself by rank and worker; workers are started afresh at each
    resume so they read from the restored cursor, hence not persistent)."""
    workers = int(data.get("num_workers", 0))
    common = dict(batch_size=batch_size, num_workers=workers, collate_fn=dict(type="default_collate"))
    if _streamed(data):
        if data.get("sampler", "shuffle") != "shuffle":
            raise ValueError(f"data.sampler={data['sampler']!r}: a shards dataset is streamed in a seeded shuffled "
                             f"order (its own shuffle option); samplers apply to map-style datasets")
        return dict(**common, sampler=None, persistent_workers=False,
                    dataset=dict(type="maekit.streamed_view", dataset=data["dataset"], transform=data.get("transform"),
                                 seed=seed))
    return dict(**common, persistent_workers=workers > 0, **_samplers(data.get("sampler", "shuffle"), seed),
                dataset=dict(type="maekit.augmented_view", dataset=data.get("dataset"), transform=data.get("transform"),
                             seed=seed))


def _samplers(name: str, seed: int) -> dict:
    """``data.sampler``: "shuffle" (a seeded permutation per pass), "balanced" (draws by the
    dataset's ``sample_weights()``) or "one_source_per_batch" (each step's batch from one source
    of a ``concat_sources`` dataset, OmniMAE's image/video mixing: a batch sampler over the
    shuffle sampler). The data loader's ``sampler`` (and ``batch_sampler``) entries."""
    types = {"shuffle": "MaekitVirtualIndexSampler", "balanced": "MaekitBalancedSampler",
             "one_source_per_batch": "MaekitVirtualIndexSampler"}
    if name not in types:
        raise ValueError(f"data.sampler must be one of {', '.join(types)}, got {name!r}")
    entries: dict = {"sampler": dict(type=types[name], seed=seed)}
    if name == "one_source_per_batch":
        entries["batch_sampler"] = dict(type="MaekitOneSourceBatchSampler")
    return entries


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _init_cpu_process_group() -> None:
    """DDP on CPU under torchrun: mmengine's own init calls torch.cuda.set_device, so the gloo
    process group is set up here first (mmengine then uses it as it is)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")


def build_runner(cfg: Config):
    """mmengine's Runner for an expanded config, with maekit's registries and checkpoint fixes
    installed into mmengine first (:func:`maekit.engine.install`)."""
    from maekit.engine import install
    from maekit.engine.fsdp import ShardedCheckpointRunner

    install()
    return ShardedCheckpointRunner.from_cfg(cfg)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what the platform module says), for the
    machine line every measured figure carries."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            found = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None)
    except OSError:
        found = None
    return found or platform.processor() or platform.machine()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); without either, PyTorch
    emulates bf16 matmuls and bf16 autocast is slower than float32."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if None in probes:  # a torch without these (private) probes: assume the best, warn about nothing
        return True
    return any(probe() for probe in probes)


def warmup_note(cfg: Config) -> str | None:
    """What :func:`runner_config` does with a warm-up longer than the run (clips it to
    ``max_iters - 1``: a config shortened from the command line stays runnable), said in the log."""
    schedule = cfg.get("schedule", {})
    max_iters, warmup = int(schedule.get("max_iters", 1)), int(schedule.get("warmup_iters", 0))
    if warmup < max_iters or max_iters < 1:
        return None
    return (f"schedule.warmup_iters={warmup} >= max_iters={max_iters}: warm-up clipped to {max_iters - 1} "
            f"iterations (the peak is reached at the last one)")


def check_resume(resume: str | None, work_dir: str | Path) -> None:
    """A clear error before the Runner starts: ``resume`` must be a checkpoint file, or ``"auto"``
    with the work dir's ``last_checkpoint`` (if any) naming one that exists."""
    if resume is None:
        return
    if resume != "auto":
        if not Path(resume).is_file():
            raise ValueError(f"--resume {resume}: not a checkpoint file (give a .pth that maekit train wrote, "
                             f"or --resume alone for the latest one in the work dir)")
        return
    pointer = Path(work_dir) / "last_checkpoint"
    if pointer.is_file():
        named = pointer.read_text().strip()
        if not named or not Path(named).is_file():
            raise ValueError(f"{pointer} names {named or 'nothing'}, which does not exist; resume from a checkpoint "
                             f"that does (--resume PATH), or remove {pointer}")


def train(config: str | Path | Config, work_dir: str | Path, overrides: dict[str, Any] | None = None,
          amp: str = "off", device: str | None = None, seed: int | None = None, resume: str | None = None,
          launcher: str = "none", hooks: list[Any] | None = None):
    """Train a config; returns the Runner after training. ``hooks``: mmengine ``Hook`` objects
    registered on the Runner besides the config's (a caller's progress display)."""
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # mmengine places the model on CUDA whenever it sees one
    if launcher == "pytorch" and not _cuda():
        _init_cpu_process_group()
    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    if isinstance(config, Config) and overrides:
        cfg.merge_from_dict(overrides)
    check_resume(resume, work_dir)
    runner = build_runner(runner_config(cfg, work_dir, amp=amp, seed=seed, resume=resume, launcher=launcher))
    for hook in hooks or ():
        runner.register_hook(hook)
    note = warmup_note(cfg)
    if note:
        runner.logger.warning(note)
    if amp == "bf16" and not _cuda() and not cpu_has_native_bf16():
        from mmengine.logging import print_log

        print_log("amp=bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): its bf16 matmuls are emulated "
                  "and run 2-3x slower than float32 (README, Performance notes); train with amp=off here",
                  logger="current", level=logging.WARNING)
    runner.train()
    if launcher != "none":
        _close_process_group()
    return runner


def _close_process_group() -> None:
    """Every rank waits for the others, then tears the process group down: a rank that exits while
    gloo's threads still serve its peers aborts ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
