"""Small mmengine hooks maekit adds to every run."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from maekit.io.checkpoint import remove_stale_temporaries, shards_of, write_bytes, write_json

__all__ = ["ThroughputHook", "DataOnlyCheckpointHook", "SafeCheckpointHook", "TeacherUpdateHook", "LossWeightHook",
           "TokenizerFitHook", "LossCurveHook", "loss_history",
           "nonfinite_tensors", "method_of", "iters_per_epoch_of"]


@HOOKS.register_module(name="MaekitThroughputHook")
class ThroughputHook(Hook):
    """Logs samples per second (all ranks together) as ``train/samples_per_s``."""

    priority = "BELOW_NORMAL"

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        inputs = data_batch.get("inputs") if isinstance(data_batch, dict) else None
        if inputs is None:
            return
        seconds = max(time.perf_counter() - self._start, 1e-9)
        runner.message_hub.update_scalar("train/samples_per_s", len(inputs) * get_world_size() / seconds)


def method_of(runner: Any) -> Any:
    """The method a Runner trains (inside the DDP/FSDP wrapper and maekit's RunnerModel)."""
    model = runner.model
    model = getattr(model, "module", model)
    return getattr(model, "model", model)


def iters_per_epoch_of(runner: Any, given: int | None = None) -> int:
    """Iterations in one pass over the training data: ``given`` (``schedule.iters_per_epoch``), else
    len(dataset) // (batch size × processes), as the references' loaders with drop_last count."""
    if given is not None:
        if not isinstance(given, int) or given < 1:
            raise ValueError(f"schedule.iters_per_epoch must be a positive int, got {given!r}")
        return given
    loader = runner.train_dataloader
    return max(1, len(loader.dataset) // (int(loader.batch_size) * get_world_size()))


class _EpochAwareHook(Hook):
    """A hook whose schedules may count epochs: the epoch length from the config
    (``schedule.iters_per_epoch``) or the data, fixed when training starts."""

    def __init__(self, iters_per_epoch: int | None = None) -> None:
        self.given = iters_per_epoch

    def before_train(self, runner: Any) -> None:
        self.iters_per_epoch = iters_per_epoch_of(runner, self.given)


@HOOKS.register_module(name="MaekitLossWeightHook")
class LossWeightHook(_EpochAwareHook):
    """Before every training iteration, moves the method's scheduled values (loss weights; see
    :class:`maekit.nn.schedules.ScheduledValues`) to the iteration — computed from it in closed
    form, so a resumed run continues exactly."""

    priority = "HIGH"

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        from maekit.nn.schedules import set_schedule_progress

        set_schedule_progress(method_of(runner), runner.iter, self.iters_per_epoch)


@HOOKS.register_module(name="MaekitTeacherUpdateHook")
class TeacherUpdateHook(_EpochAwareHook):
    """After each optimiser step, the EMA updates of the method's teachers (every iteration or at
    the end of each epoch, each with its momentum schedule; :func:`maekit.nn.teachers.
    update_teachers`). With gradient accumulation a per-iteration teacher follows the iterations
    that stepped; a per-epoch one updates at each epoch's last iteration regardless.
    The momentum used is logged as ``train/teacher_momentum``."""

    priority = "ABOVE_NORMAL"

    def before_train(self, runner: Any) -> None:
        from maekit.engine.fsdp import FullyShardedModel
        from maekit.nn.teachers import teachers_in

        super().before_train(runner)
        if isinstance(runner.model, FullyShardedModel) and any(teachers_in(method_of(runner))):
            # FSDP shards each parameter across ranks: the by-name EMA would combine slices
            raise ValueError("a method with a teacher trains with strategy='ddp'; FSDP is not supported for it")
        for _, teacher in teachers_in(method_of(runner)):  # a momentum cosine over the whole run learns its length
            fit_run = getattr(teacher.momentum, "fit_run", None)
            if fit_run is not None:
                fit_run(int(runner.max_iters), self.iters_per_epoch)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        from maekit.nn.teachers import update_teachers

        wrapper = runner.optim_wrapper  # inside an accumulation window no step was taken
        stepped = not hasattr(wrapper, "should_update") or wrapper.should_update()
        used = update_teachers(method_of(runner), runner.iter, self.iters_per_epoch, stepped)
        if used:
            runner.message_hub.update_scalar("train/teacher_momentum", next(iter(used.values())))


@HOOKS.register_module(name="MaekitTokenizerFitHook")
class TokenizerFitHook(Hook):
    """Before the first step, fits the method's trainable tokenizers that are not fitted yet (iGPT's
    colour palette) on the run's training images, in order, through the training transform
    (:func:`maekit.nn.tokenizers.fit_tokenizers`; in a seeded random order for a tokenizer that sets
    ``fit_shuffle``), or from the training dataset itself where the
    tokenizer reads it directly (a caption vocabulary: the captions, no clip decoded). Every
    process fits from the same images and seed; under DDP rank 0's result is broadcast so all
    ranks hold one vocabulary. The fitted state is in
    the model's buffers and frozen weights (every checkpoint has it; a resumed run does not refit), and each
    tokenizer's own file (``save_fitted``) is written into the work folder."""

    priority = "VERY_HIGH"

    def before_train(self, runner: Any) -> None:
        import torch
        from torch.utils.data import DataLoader, IterableDataset

        from maekit.nn.tokenizers import fit_tokenizers, tokenizers_in

        method = method_of(runner)
        tokenizers = dict(tokenizers_in(method))
        if all(tokenizer.fitted for tokenizer in tokenizers.values()):
            return
        source = runner.train_dataloader
        # a loader with a batch sampler (concat_sources) has no batch_size: read in batches of 32; in a
        # seeded random order where a tokenizer asks (fit_shuffle: its first fit_samples images of a
        # class-sorted folder must not be the first classes only), else in dataset order
        shuffle = any(tokenizer.fit_shuffle for tokenizer in tokenizers.values() if not tokenizer.fitted)
        if isinstance(source.dataset, IterableDataset):  # a stream: its own seeded order, and no end
            endless = [name for name, tokenizer in tokenizers.items() if not tokenizer.fitted and not tokenizer.fit_samples]
            if endless:
                raise ValueError(f"tokenizer {endless[0]} fits on all the training images, which a streamed dataset "
                                 f"never ends: give it fit_samples (how many images to fit on)")
            shuffle = False
        loader = DataLoader(source.dataset, batch_size=source.batch_size or 32, shuffle=shuffle,
                            generator=torch.Generator().manual_seed(int(runner.seed)), collate_fn=source.collate_fn)
        for name in fit_tokenizers(method, loader, seed=int(runner.seed), dataset=source.dataset):
            tokenizer = tokenizers[name]
            if get_world_size() > 1:  # its whole fitted state: buffers (a palette) and weights (a VQ-VAE)
                for tensor in [*tokenizer.parameters(), *tokenizer.buffers()]:
                    torch.distributed.broadcast(tensor.data, src=0)
            if is_main_process():
                written = tokenizer.save_fitted(Path(runner.work_dir))
                runner.logger.info(f"fitted tokenizer {name} ({type(tokenizer).__name__}) on the training data"
                                   + (f"; written: {', '.join(map(str, written))}" if written else ""))


def loss_history(message_hub: Any, last_iter: int) -> dict[str, Any]:
    """The run's logged terms, one value per iteration (mmengine's message hub keeps every one and
    checkpoints carry them, so a resumed run has its whole history): ``{"iterations": [...],
    "terms": {name: [...]}, "train_seconds": s}`` up to ``last_iter``; learning rate, timings and
    the hooks' own values left out of the terms; ``train_seconds`` sums the iterations' times."""
    from maekit.eval.plots import NOT_A_LOSS

    terms = {}
    for key, buffer in message_hub.log_scalars.items():
        name = key[len("train/"):]
        if key.startswith("train/") and name not in NOT_A_LOSS:
            values, _ = buffer.data
            terms[name] = [float(v) for v in values[-last_iter:]]
    length = max((len(v) for v in terms.values()), default=0)
    # a term logged from a later iteration on (a scheduled loss weight) is padded in front with NaN
    terms = {name: [float("nan")] * (length - len(v)) + v for name, v in terms.items()}
    seconds = _train_seconds(message_hub, last_iter)
    return {"iterations": list(range(last_iter - length + 1, last_iter + 1)), "terms": terms, "train_seconds": seconds}


def _train_seconds(message_hub: Any, last_iter: int) -> float | None:
    """The run's training time: every iteration's time with its wait for data replaced by the
    median wait (a resumed run's first iteration also waited while mmengine advanced the loader
    past the batches already trained, which is not training time)."""
    import numpy as np

    times, waits = message_hub.log_scalars.get("train/time"), message_hub.log_scalars.get("train/data_time")
    if times is None:
        return None
    total = np.asarray(times.data[0][-last_iter:], dtype=np.float64)
    if waits is None or len(waits.data[0]) < len(total):
        return float(total.sum())
    wait = np.asarray(waits.data[0][-len(total):], dtype=np.float64)
    return float((total - wait).sum() + np.median(wait) * len(total))


@HOOKS.register_module(name="MaekitLossCurveHook")
class LossCurveHook(Hook):
    """Writes ``loss_history.json`` and ``loss_curve.png`` (every logged term against the
    iteration) into the work folder every ``interval`` iterations (the checkpoints') and at the
    end: a run stopped at any point leaves the curve of what it did up to its last checkpoint."""

    priority = "LOW"

    def __init__(self, interval: int = 1000) -> None:
        self.interval = max(1, int(interval))

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.write(runner, runner.iter + 1)

    def after_train(self, runner: Any) -> None:
        self.write(runner, runner.iter)

    def write(self, runner: Any, last_iter: int) -> None:
        from maekit.eval.plots import loss_curve_png

        if not is_main_process() or last_iter < 1:
            return
        history = loss_history(runner.message_hub, last_iter)
        if not history["terms"]:
            return
        work = Path(runner.work_dir)
        write_json(work / "loss_history.json", history, indent=None)
        run_name = work.parent.name if work.name == "work" else work.name  # a demo trains in <out>/work
        loss_curve_png(history["iterations"], history["terms"], work / "loss_curve.png", title=f"{run_name}: training loss")


def _to_plain(value: Any) -> Any:
    """numpy arrays → tensors, numpy scalars → Python numbers, HistoryBuffers → tagged dicts."""
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer

    if isinstance(value, HistoryBuffer):
        return {"__history_buffer__": True, "max_length": int(value.max_length),
                "log": torch.from_numpy(np.asarray(value._log_history, dtype=np.float64)),
                "count": torch.from_numpy(np.asarray(value._count_history, dtype=np.int64))}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(v) for v in value)
    return value


def _from_plain(value: Any) -> Any:
    from mmengine.logging import HistoryBuffer

    if isinstance(value, dict) and value.get("__history_buffer__"):
        return HistoryBuffer(value["log"].numpy().tolist(), value["count"].numpy().tolist(), value["max_length"])
    if isinstance(value, dict):
        return {k: _from_plain(v) for k, v in value.items()}
    return value


@HOOKS.register_module(name="MaekitDataOnlyCheckpointHook")
class DataOnlyCheckpointHook(Hook):
    """Keeps checkpoints free of pickled classes and functions, so they load with
    ``torch.load(weights_only=True)`` and nothing allowed beyond tensors and plain containers.

    mmengine stores its message hub as ``HistoryBuffer`` objects (whose state includes bound
    statistics functions) and numpy values; they are turned into tensors and tagged dicts on save
    and back on load.
    """

    priority = "VERY_HIGH"

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        for key in ("message_hub", "meta"):
            if key in checkpoint:
                checkpoint[key] = _to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = _from_plain(checkpoint["message_hub"])


def nonfinite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in a nested dict/list that hold nan or inf."""
    import torch

    if isinstance(tree, torch.Tensor):
        return [prefix] if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else []
    if isinstance(tree, dict):
        return [name for key, value in tree.items() for name in nonfinite_tensors(value, f"{prefix}.{key}".lstrip("."))]
    if isinstance(tree, (list, tuple)):
        return [name for i, value in enumerate(tree) for name in nonfinite_tensors(value, f"{prefix}.{i}".lstrip("."))]
    return []


@HOOKS.register_module(name="MaekitCheckpointHook")
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` made safe against crashes and full disks:

    - a checkpoint holding a non-finite tensor (weights or optimiser state) is never written: the
      save raises ``FloatingPointError`` naming the tensors and the last good checkpoint;
    - the new checkpoint is written (atomically) *before* the oldest kept one is deleted, so a
      failed write leaves every earlier checkpoint in place;
    - ``last_checkpoint`` is written atomically and only after its checkpoint is complete;
    - temporary files of writes killed half-way are removed when a run starts.
    """

    def before_train(self, runner: Any) -> None:
        super().before_train(runner)  # sets out_dir
        # the last complete checkpoint, for messages: what last_checkpoint names (after a resume too)
        pointer = Path(runner.work_dir) / "last_checkpoint"
        runner.message_hub.update_info("last_good_ckpt", pointer.read_text().strip() if pointer.is_file() else None)
        if is_main_process():
            for folder in {Path(runner.work_dir), Path(self.out_dir)}:
                for path in remove_stale_temporaries(folder):
                    runner.logger.info(f"removed {path}, left by a write that was interrupted")

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        broken = nonfinite_tensors({key: checkpoint.get(key) for key in ("state_dict", "optimizer")})
        if broken:
            last = runner.message_hub.get_info("last_good_ckpt") or "none written yet"
            raise FloatingPointError(
                f"refusing to save a checkpoint at iteration {runner.iter + 1}: {len(broken)} tensor(s) are "
                f"non-finite ({', '.join(broken[:5])}); the last good checkpoint is {last}")

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        stale = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        gather_cursors = getattr(runner.train_loop, "gather_cursors", None)
        if gather_cursors is not None:  # a streamed run: every rank's shard cursor into the checkpoint
            gather_cursors()
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        runner.message_hub.update_info("last_good_ckpt", self.last_ckpt)
        if not is_main_process():
            return
        write_bytes(Path(runner.work_dir) / "last_checkpoint", str(self.last_ckpt).encode())
        if stale is not None:
            old = Path(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(stale)))
            if old.is_file():
                old.unlink()
            shutil.rmtree(shards_of(old), ignore_errors=True)  # its shards, when the run is sharded (FSDP)
