"""Optimisation pieces for mmengine: a guarded optimiser wrapper with bf16 autocast, and
layer-wise learning-rate decay for fine-tuning ViTs."""
from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

__all__ = ["GuardedOptimWrapper", "all_ranks_agree", "total_norm", "NoDecayOptimWrapperConstructor", "LayerDecayOptimWrapperConstructor",
           "no_weight_decay_names", "takes_no_decay"]


def no_weight_decay_names(model: torch.nn.Module) -> set[str]:
    """Full names of the parameters that ``model``'s modules declare as taking no weight decay
    through their ``no_weight_decay()`` (timm's habit: each module knows its tokens and tables)."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        declared = getattr(module, "no_weight_decay", None)
        if callable(declared):
            names |= {f"{prefix}.{name}" if prefix else name for name in declared()}
    return names


def takes_no_decay(name: str, param: torch.nn.Parameter, declared: set[str]) -> bool:
    """Norm weights and biases (every parameter of at most one dimension) and the declared ones."""
    return param.ndim <= 1 or name in declared


@OPTIM_WRAPPERS.register_module(name="MaekitOptimWrapper")
class GuardedOptimWrapper(OptimWrapper):
    """mmengine's ``OptimWrapper`` plus bf16 autocast (CPU and GPU) and a guard against non-finite
    training: it checks the loss before the backward pass, the gradient norm before the update
    and every parameter after it. ``nonfinite="stop"`` raises ``FloatingPointError`` naming what
    was non-finite, the iteration and the last good checkpoint, before any checkpoint can hold the
    bad values; ``"skip"`` drops the step (a step that made parameters non-finite is undone from a
    copy taken before it: one copy of the parameters and optimiser state per step, the price of
    skipping), counts it (``skipped_steps`` in the message hub) and goes on. In DDP every rank
    takes the same decision.
    """

    def __init__(self, *args: Any, autocast_dtype: str | None = None, nonfinite: str = "stop", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if nonfinite not in ("stop", "skip"):
            raise ValueError(f"schedule.nonfinite must be 'stop' or 'skip', got {nonfinite!r}")
        if autocast_dtype not in (None, "bfloat16"):
            raise ValueError(f"autocast_dtype must be None or 'bfloat16' (use AmpOptimWrapper for float16), got {autocast_dtype!r}")
        self.autocast_dtype, self.nonfinite, self.skipped_steps = autocast_dtype, nonfinite, 0
        self.parameter_names: dict[int, str] = {}
        self.window_dropped = False

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        if not self.parameter_names:  # for messages naming non-finite parameters
            self.parameter_names = {id(p): name for name, p in model.named_parameters()}
        with super().optim_context(model):
            if self.autocast_dtype is None:
                yield
                return
            device = next(model.parameters()).device.type
            with torch.autocast(device_type=device, dtype=torch.bfloat16) if device in ("cpu", "cuda") else nullcontext():
                yield

    def update_params(self, loss: torch.Tensor, step_kwargs: dict | None = None, zero_kwargs: dict | None = None) -> None:
        if not all_ranks_agree(torch.isfinite(loss.detach()).all()):
            self.refuse(f"non-finite loss ({loss.item()})", "before the update")
            # no backward ran; the accumulation window this micro-batch belongs to is dropped whole
            # (its other micro-batches' gradients would otherwise step as a partial sum)
            self._inner_count += 1
            self.window_dropped = True
            if self.should_update():
                self.zero_grad()
                self.window_dropped = False
            return
        super().update_params(loss, step_kwargs, zero_kwargs)

    def step(self, **kwargs: Any) -> None:
        """The update, between a check of the gradients and one of the parameters it produced (a
        refused update returns without stepping; the caller, ``update_params``, zeroes the gradients)."""
        if self.window_dropped:  # a micro-batch of this window had a non-finite loss (counted then)
            self.window_dropped = False
            return
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not all_ranks_agree(torch.isfinite(total_norm(grads))):
            self.refuse("non-finite gradient norm", "before the update")
            return
        saved = self.snapshot(params) if self.nonfinite == "skip" else None
        super().step(**kwargs)
        if all_ranks_agree(torch.isfinite(total_norm(params))):
            return
        broken = self.nonfinite_parameter_names(params)
        if saved is not None:
            self.restore(params, saved)
        self.refuse(f"the update made parameters non-finite ({', '.join(broken[:5])}"
                    f"{f' and {len(broken) - 5} more' if len(broken) > 5 else ''})", "after the update")

    def nonfinite_parameter_names(self, params: list[torch.Tensor]) -> list[str]:
        return [self.parameter_names.get(id(p), f"parameter {i}") for i, p in enumerate(params)
                if not bool(torch.isfinite(p).all())]

    def snapshot(self, params: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict]:
        import copy

        return [p.detach().clone() for p in params], copy.deepcopy(self.optimizer.state_dict()["state"])

    def restore(self, params: list[torch.Tensor], saved: tuple[list[torch.Tensor], dict]) -> None:
        values, state = saved
        with torch.no_grad():
            for param, value in zip(params, values):
                param.copy_(value)
        full = self.optimizer.state_dict()
        full["state"] = state
        self.optimizer.load_state_dict(full)

    def refuse(self, what: str, when: str) -> None:
        """Stop with a message naming what, when and the last good checkpoint; or count a skip."""
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info("iter", 0)
        if self.nonfinite == "stop":
            last = hub.get_info("last_good_ckpt") or "none written yet"
            raise FloatingPointError(
                f"{what} at iteration {iteration}: training stopped {when}; no checkpoint holds it (the last "
                f"good checkpoint: {last}). Lower the learning rate (schedule.blr), use bf16 instead of fp16, "
                f"or set schedule.nonfinite='skip' to skip such steps")
        self.skipped_steps += 1
        hub.update_info("skipped_steps", self.skipped_steps)
        print_log(f"skipped a step at iteration {iteration}: {what} ({self.skipped_steps} skipped so far)",
                  logger="current")


def all_ranks_agree(ok: torch.Tensor) -> bool:
    """True when ``ok`` holds on every rank (one all-reduce in DDP, so every rank decides alike)."""
    flag = ok.detach().to(torch.float32).reshape(1)
    if is_distributed():
        all_reduce(flag, op="min")
    return flag.item() == 1.0


def total_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all ``tensors`` together, in float32 (inf or nan where any value is). Sharded
    tensors (FSDP's DTensors) count by their local shard: the guard only asks whether any value is
    non-finite, and :func:`all_ranks_agree` combines the ranks' answers."""
    tensors = [t.to_local() if hasattr(t, "to_local") else t for t in tensors]
    norms = torch._foreach_norm(tensors) if hasattr(torch, "_foreach_norm") else [t.norm() for t in tensors]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(name="MaekitNoDecayConstructor")
class NoDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Two parameter groups: no weight decay for norms and biases (as MAE's
    ``param_groups_weight_decay``) and for whatever the modules declare in ``no_weight_decay()``
    (class and mask tokens, position tables: MMPretrain's choice; the official MAE code decays the
    tokens); frozen parameters left out. With a ``paramwise_cfg`` mmengine's own grouping applies."""

    def __call__(self, model: torch.nn.Module) -> OptimWrapper:
        if self.paramwise_cfg:
            return super().__call__(model)
        model = getattr(model, "module", model)  # unwrap DDP
        declared = no_weight_decay_names(model)
        trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        groups = [{"params": [p for name, p in trained if not takes_no_decay(name, p, declared)]},
                  {"params": [p for name, p in trained if takes_no_decay(name, p, declared)], "weight_decay": 0.0}]
        optimizer = OPTIMIZERS.build({**self.optimizer_cfg, "params": groups})
        wrapper_cfg = {"type": "OptimWrapper", **self.optim_wrapper_cfg}
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))

    def add_params(self, params: list[dict], module: torch.nn.Module, prefix: str = "", is_dcn_module: Any = None) -> None:
        """mmengine's grouping for a ``paramwise_cfg``, minus frozen parameters (teachers, fixed
        position tables), which mmengine would put in the groups too."""
        super().add_params(params, module, prefix, is_dcn_module)
        params[:] = [group for group in params if all(p.requires_grad for p in group["params"])]


# any other encoder parameter outside its blocks and final norm embeds the input: plugins' position
# MLPs and tables (pos_mlp, positions), class-token positions (cls_pos)
_EMBEDDING = re.compile(r"(^|\.)encoder\.(?!blocks\.|norm\.)")


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(name="MaekitLayerDecayConstructor")
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise learning-rate decay (BEiT/MAE fine-tuning): a parameter in block i of L gets
    lr × decay^(L − i); patch embedding, cls token and positions (any encoder parameter outside its
    blocks and final norm) count as layer 0, the head and the encoder's final norm as L + 1.
    Norms, biases and what the modules declare in ``no_weight_decay()`` get no weight decay.
    ``paramwise_cfg=dict(layer_decay=0.65)``.
    """

    def add_params(self, params: list[dict], module: torch.nn.Module, prefix: str = "", is_dcn_module: Any = None) -> None:
        decay = float(self.paramwise_cfg.get("layer_decay", 0.75))
        declared = no_weight_decay_names(module)
        depth = 1 + max((int(m.group(1)) for name, _ in module.named_parameters()
                         if (m := re.search(r"blocks\.(\d+)\.", name))), default=-1)
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            match = re.search(r"blocks\.(\d+)\.", name)
            if match:
                layer = int(match.group(1)) + 1
            elif any(key in name for key in ("patch_embed", "cls_token", "pos_embed")) or _EMBEDDING.search(name):
                layer = 0
            else:
                layer = depth + 1
            params.append({"params": [param], "lr": self.base_lr * decay ** (depth + 1 - layer),
                           "weight_decay": 0.0 if takes_no_decay(name, param, declared) else self.base_wd, "name": name})
