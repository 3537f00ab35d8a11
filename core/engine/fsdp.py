"""FSDP for maekit's Runner: PyTorch's ``fully_shard`` (FSDP2) behind mmengine's model-wrapper
interface, and sharded checkpoints written with ``torch.distributed.checkpoint`` (DCP).

Why not mmengine's ``MMFullyShardedDataParallel`` (FSDP1), measured on 2 CPU processes with gloo
(torch 2.11, mmengine 0.10.7): it refuses a CPU module without ``device_id``; with one, mmengine's
weight initialisation broadcasts each rank's flat shards (different sizes: gloo aborts); once past
that, mmengine's checkpoint holds rank 0's flat shards only (a resume would load garbage), the
no-weight-decay grouping sees every flat shard as 1-D (no parameter decayed) and gradient clipping
clips each rank's shard by its own norm. ``fully_shard`` keeps every parameter's shape (a DTensor
sharded on dim 0), so grouping and clipping work as written.

:class:`FullyShardedModel` initialises the weights, broadcasts them from rank 0, then shards each
transformer block (every child of a module list named ``blocks``, timm's and maekit's name) and
the root. :class:`ShardedCheckpointRunner` saves ``iter_N.dcp/`` (every rank writes its shard of
model and optimiser; written as ``iter_N.dcp.tmp`` and renamed by rank 0 once all ranks are done)
beside ``iter_N.pth`` (full weights for probes and export, schedule, iteration, message hub),
and resumes from both. A checkpoint is complete when ``last_checkpoint`` names it: that pointer is
written after both parts.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from mmengine.runner import Runner

from maekit.io.checkpoint import CheckpointError, shards_of

__all__ = ["FullyShardedModel", "ShardedCheckpointRunner"]


@MODEL_WRAPPERS.register_module(name="MaekitFullyShardedModel")
class FullyShardedModel(torch.nn.Module):
    """A Runner model sharded with ``fully_shard`` over all ranks (CPU with gloo, or CUDA).
    ``reshard_after_forward``: free each block's gathered weights after its forward (ZeRO-3; False:
    keep them until the backward, ZeRO-2-like, more memory and one all-gather less)."""

    def __init__(self, module: torch.nn.Module, reshard_after_forward: bool = True) -> None:
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        super().__init__()
        if not dist.is_initialized():
            raise ValueError("strategy='fsdp' needs a distributed run: launch with torchrun ... --launcher pytorch")
        # what mmengine's Runner does after wrapping (initialise, then broadcast rank 0's weights)
        # must happen before sharding: afterwards each rank holds a different slice
        if hasattr(module, "init_weights"):
            module.init_weights()
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        mesh = init_device_mesh(device, (dist.get_world_size(),))
        for name, child in module.named_modules():
            if name.rsplit(".", 1)[-1] == "blocks" and isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
                for block in child:
                    fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
        fully_shard(module, mesh=mesh, reshard_after_forward=reshard_after_forward)
        self.module = module

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        """As mmengine's DDP wrapper: forward in the optimiser's context, then its update."""
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = self.module._run_forward(data, mode="loss")
        parsed, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        return log_vars

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)


class _FullWeights(torch.nn.Module):
    """Stands in for the sharded model where mmengine's checkpoint code reads or loads weights:
    hands out the gathered full weights when a checkpoint is written, and takes the whole state
    dict of a checkpoint being read (no key reported unexpected), for this runner to place."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.weights = dict(weights or {})

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        from collections import OrderedDict

        return OrderedDict(self.weights)  # mmengine's weights_to_cpu sets an attribute on it

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:  # type: ignore[override]
        self.weights = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _load_planner() -> Any:
    """DCP's default load planner without its fallback for pre-2.4 checkpoints, which a rank with
    an empty shard (a parameter with fewer rows than ranks, e.g. a 1×D class token) falls into and
    then fails ("Missing key in checkpoint state_dict")."""
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, create_default_local_load_plan

    class Planner(DefaultLoadPlanner):
        def create_local_plan(self) -> Any:
            return create_default_local_load_plan(self.state_dict, self.metadata, not self.allow_partial_load)

    return Planner()


@RUNNERS.register_module(name="MaekitRunner")
class ShardedCheckpointRunner(Runner):
    """mmengine's Runner, saving and resuming a :class:`FullyShardedModel` through DCP (see the
    module's docstring); any other model goes through mmengine's own code unchanged."""

    @property
    def sharded(self) -> bool:
        return isinstance(self.model, FullyShardedModel)

    def _init_model_weights(self) -> None:
        if not self.sharded:  # a sharded model was initialised and synchronised before sharding
            super()._init_model_weights()

    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if not self.sharded:
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp
        from mmengine.dist import is_main_process
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

        from maekit.engine.hooks import nonfinite_tensors
        from maekit.engine.optim import all_ranks_agree

        model, optimizer = self.model.module, self.optim_wrapper.optimizer
        weights, optimizer_state = get_state_dict(model, optimizer)  # every rank: its shards
        broken = nonfinite_tensors({"state_dict": weights, "optimizer": optimizer_state})
        if not all_ranks_agree(torch.tensor(not broken)):  # every rank stops alike (a lone raise would hang the rest)
            last = self.message_hub.get_info("last_good_ckpt") or "none written yet"
            raise FloatingPointError(f"refusing to save a checkpoint at iteration {self.iter + 1}: non-finite "
                                     f"tensors{' (' + ', '.join(broken[:5]) + ')' if broken else ' on another rank'}; "
                                     f"the last good checkpoint is {last}")
        shards = shards_of(Path(out_dir) / filename)
        partial = shards.with_name(shards.name + ".tmp")
        if is_main_process():
            shutil.rmtree(partial, ignore_errors=True)  # left by a save that was killed
        dist.barrier()
        dcp.save({"model": weights, "optimizer": optimizer_state}, checkpoint_id=str(partial))  # raises on every rank
        # the whole weights on rank 0 only (for probes and export, which read iter_N.pth)
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        failure = None
        if is_main_process():  # every rank's shard is written (dcp.save ends in a collective)
            try:
                shutil.rmtree(shards, ignore_errors=True)
                partial.rename(shards)
                sharded_model, self.model = self.model, _FullWeights(full)  # type: ignore[assignment]
                try:  # iter_N.pth (atomically): full weights, schedule, iteration, message hub
                    super().save_checkpoint(out_dir, filename, *args, **{**kwargs, "save_optimizer": False})
                finally:
                    self.model = sharded_model
            except Exception as error:  # noqa: BLE001  (re-raised below, once the other ranks know)
                failure = error
        if not all_ranks_agree(torch.tensor(failure is None)):
            if failure is not None:
                raise failure
            raise CheckpointError(f"rank 0 failed to write checkpoint {filename} (its log says why); stopped on every "
                                  f"rank")

    def resume(self, filename: str, resume_optimizer: bool = True, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # load_checkpoint: a sharded run's weights (and optimiser) from the shards; any other run
        # refuses a sharded checkpoint, whose .pth holds no optimiser state
        self.resuming, self.resume_optimizer = True, resume_optimizer
        try:
            super().resume(filename, resume_optimizer, *args, **kwargs)
        finally:
            self.resuming = False

    def load_checkpoint(self, filename: str, map_location: Any = "cpu", strict: bool = False,  # type: ignore[override]
                        revise_keys: list = [(r"^module.", "")]) -> dict:  # noqa: B006  (mmengine's default)
        """Resuming a sharded run: weights and optimiser state from ``iter_N.dcp``, the rest from
        ``iter_N.pth``. Loading weights (``load_from``): the full weights of any maekit checkpoint,
        placed into the shards."""
        if not self.sharded:
            if getattr(self, "resuming", False) and shards_of(filename).is_dir():
                raise ValueError(f"{filename} was written by a sharded (strategy='fsdp') run: resume it with "
                                 f"strategy='fsdp', or start this run from its weights with load_from")
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        from mmengine.logging import print_log
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        holder = _FullWeights()
        sharded_model, self.model = self.model, holder  # type: ignore[assignment]
        try:  # read the file through mmengine (hooks, key revision); the weights land in holder
            checkpoint = super().load_checkpoint(filename, "cpu", False, revise_keys)
        finally:
            self.model = sharded_model
        if getattr(self, "resuming", False):
            self._load_shards(filename)
            checkpoint.pop("optimizer", None)  # restored from the shards: mmengine's resume must not load it again
        else:
            result = set_model_state_dict(self.model.module, holder.weights,
                                          options=StateDictOptions(full_state_dict=True, strict=strict))
            if result.missing_keys or result.unexpected_keys:  # as mmengine reports a non-strict load
                print_log(f"load_from {filename}: missing keys {result.missing_keys}, unexpected keys "
                          f"{result.unexpected_keys}", logger="current", level=logging.WARNING)
        return checkpoint

    def _load_shards(self, filename: str) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_model_state_dict, set_state_dict

        shards = shards_of(filename)
        if not shards.is_dir():
            raise ValueError(f"{filename}: a sharded (strategy='fsdp') run resumes from the checkpoint's {shards.name} "
                             f"folder, which is missing (a checkpoint of another strategy: give it as load_from)")
        weights, optimizer_state = get_state_dict(self.model.module, self.optim_wrapper.optimizer)
        state = {"model": weights, "optimizer": optimizer_state}
        if not getattr(self, "resume_optimizer", True):  # Runner.resume(..., resume_optimizer=False)
            state.pop("optimizer")
        dcp.load(state, checkpoint_id=str(shards), planner=_load_planner())
        if "optimizer" in state:
            set_state_dict(self.model.module, self.optim_wrapper.optimizer, model_state_dict=state["model"],
                           optim_state_dict=state["optimizer"])
        else:
            set_model_state_dict(self.model.module, state["model"])
