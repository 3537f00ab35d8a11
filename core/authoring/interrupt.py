"""A crash in the middle of training, for resume tests: importing this module registers the hook
``MaekitTestInterrupt`` (``custom_hooks=[dict(type="MaekitTestInterrupt", iteration=N)]``), which
raises :class:`Interrupted` right after iteration N has been checkpointed. A config run in another
process (under torchrun) loads it with ``custom_imports = dict(imports=["maekit.authoring.interrupt"])``."""
from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ["Interrupted", "InterruptAfterIter"]


class Interrupted(Exception):
    """Raised by :class:`InterruptAfterIter`."""


@HOOKS.register_module(name="MaekitTestInterrupt", force=True)
class InterruptAfterIter(Hook):
    priority = "LOWEST"  # after the checkpoint hook has saved

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter + 1 == self.iteration:
            raise Interrupted(f"interrupted after iteration {self.iteration}")
