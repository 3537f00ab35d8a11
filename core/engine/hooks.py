"""Small mmengine hooks maekit adds to every run."""
from __future__ import annotations

import time
from typing import Any

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ["ThroughputHook"]


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
