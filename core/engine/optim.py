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
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

__all__ = ["GuardedOptimWrapper", "LayerDecayOptimWrapperConstructor", "no_decay_paramwise_cfg"]


def no_decay_paramwise_cfg() -> dict[str, Any]:
    """No weight decay for norms, biases, position embeddings and cls/mask tokens (MMPretrain's
    choice; the official MAE code decays the tokens)."""
    zero = dict(decay_mult=0.0)
    return dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                custom_keys={"pos_embed": zero, "cls_token": zero, "mask_token": zero})


@OPTIM_WRAPPERS.register_module(name="MaekitOptimWrapper")
class GuardedOptimWrapper(OptimWrapper):
    """mmengine's ``OptimWrapper`` plus bf16 autocast (CPU and GPU) and a guard against non-finite
    losses: ``nonfinite="stop"`` raises ``FloatingPointError`` before the update (checkpoints
    already written stay good); ``"skip"`` drops the step, counts it (``skipped_steps`` in the
    message hub) and goes on. In DDP every rank takes the same decision.
    """

    def __init__(self, *args: Any, autocast_dtype: str | None = None, nonfinite: str = "stop", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if nonfinite not in ("stop", "skip"):
            raise ValueError(f"nonfinite must be 'stop' or 'skip', got {nonfinite!r}")
        if autocast_dtype not in (None, "bfloat16"):
            raise ValueError(f"autocast_dtype must be None or 'bfloat16' (use AmpOptimWrapper for float16), got {autocast_dtype!r}")
        self.autocast_dtype, self.nonfinite, self.skipped_steps = autocast_dtype, nonfinite, 0

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        with super().optim_context(model):
            if self.autocast_dtype is None:
                yield
                return
            device = next(model.parameters()).device.type
            with torch.autocast(device_type=device, dtype=torch.bfloat16) if device in ("cpu", "cuda") else nullcontext():
                yield

    def update_params(self, loss: torch.Tensor, step_kwargs: dict | None = None, zero_kwargs: dict | None = None) -> None:
        finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if is_distributed():
            all_reduce(finite, op="min")
        if finite.item() == 1.0:
            super().update_params(loss, step_kwargs, zero_kwargs)
            return
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info("iter", 0)
        if self.nonfinite == "stop":
            raise FloatingPointError(
                f"non-finite loss ({loss.item()}) at iteration {iteration}: training stopped before the "
                f"update; checkpoints already written are intact. Lower the learning rate, use bf16 instead of "
                f"fp16, or set nonfinite='skip' to skip such steps")
        self.skipped_steps += 1
        self._inner_count += 1  # keep gradient-accumulation windows aligned
        self.zero_grad()
        hub.update_info("skipped_steps", self.skipped_steps)
        print_log(f"skipped a step with a non-finite loss at iteration {iteration} "
                  f"({self.skipped_steps} skipped so far)", logger="current")


# any other encoder parameter outside its blocks and final norm embeds the input: plugins' position
# MLPs and tables (pos_mlp, positions), class-token positions (cls_pos)
_EMBEDDING = re.compile(r"(^|\.)encoder\.(?!blocks\.|norm\.)")


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(name="MaekitLayerDecayConstructor")
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise learning-rate decay (BEiT/MAE fine-tuning): a parameter in block i of L gets
    lr × decay^(L − i); patch embedding, cls token and positions (any encoder parameter outside its
    blocks and final norm) count as layer 0, the head and the encoder's final norm as L + 1.
    Norms, biases, positions and tokens get no weight decay. ``paramwise_cfg=dict(layer_decay=0.65)``.
    """

    def add_params(self, params: list[dict], module: torch.nn.Module, prefix: str = "", is_dcn_module: Any = None) -> None:
        decay = float(self.paramwise_cfg.get("layer_decay", 0.75))
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
            no_decay = param.ndim == 1 or name.endswith((".bias", "pos_embed", "cls_token", "cls_pos", "mask_token"))
            params.append({"params": [param], "lr": self.base_lr * decay ** (depth + 1 - layer),
                           "weight_decay": 0.0 if no_decay else self.base_wd, "name": name})
