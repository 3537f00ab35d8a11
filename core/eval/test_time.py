"""Test-time training: adapt a trained model to each test sample with its self-supervised loss, then
predict (TTT-MAE, Gandelsman et al. 2022; TTT, Sun et al. 2020).

Episodic (the default, as both references): for every test sample, start from the trained weights,
take ``steps`` optimiser steps on the self-supervised loss over ``copies`` views of that one sample
(each copy its own random mask, rotation or crop, drawn anew every step), and predict the sample
with the adapted weights after every step (step 0 = no adaptation). Nothing carries over between
samples. Online: no reset; the weights and the optimiser's state carry on along the test stream.

The model is never modified: adapted weights live beside it, one copy per sample, and the passes
run through ``torch.func`` (``functional_call`` under ``vmap``). That is what lets several samples
adapt in one batched pass and still give exactly what each gives alone (every sample has its own
weights, optimiser state and random stream, seeded by its index), and what makes the reset free.

A model adapts at test time when it has (see :class:`TestTimeModel`): ``classify(batch)`` → logits,
``test_time_views(image, copies, generator)`` → the tensors one step's loss reads (all randomness
drawn here, from the sample's generator), ``test_time_loss(views)`` → a scalar, and
``test_time_presets`` naming its usual trainable sets.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import torch
from torch import nn

from maekit.data.views import mix_seed
from maekit.nn.attention import explicit_attention

__all__ = ["TestTimeModel", "TestTimeSettings", "TestTimeResult", "FunctionalOptimizer", "select_trainable", "reached_by_loss",
           "adapt_and_predict"]


class TestTimeModel(Protocol):
    __test__ = False  # not a pytest class, whatever its name
    test_time_presets: Mapping[str, Sequence[str]]

    def classify(self, batch: Any) -> torch.Tensor: ...

    def test_time_views(self, image: torch.Tensor, copies: int, generator: torch.Generator) -> dict[str, torch.Tensor]: ...

    def test_time_loss(self, views: dict[str, torch.Tensor]) -> torch.Tensor: ...


@dataclass(frozen=True)
class TestTimeSettings:
    """How to adapt. ``trainable``: a preset of the model (``test_time_presets``, e.g. TTT-MAE's
    ``encoder``) or glob patterns over parameter names, a leading ``-`` excluding
    (``("encoder.*", "-encoder.patch_embed.*")``); parameters built fixed (``requires_grad=False``, e.g.
    sin-cos position tables) never adapt. ``samples_per_batch``: samples adapted together
    (memory grows with it × ``copies``; results do not change). ``reset``: ``episodic`` or ``online``."""

    __test__ = False
    steps: int = 20
    copies: int = 128
    lr: float = 5e-3
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    trainable: str | tuple[str, ...] = "encoder"
    reset: str = "episodic"
    samples_per_batch: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _has_type(f.name, value):
                raise ValueError(f"test-time setting {f.name}={value!r}: expected {_EXPECTED_TYPE.get(f.name, 'text')}")
        checks = [(self.steps >= 0, "steps", "an integer ≥ 0"), (self.copies >= 1, "copies", "an integer ≥ 1"),
                  (self.lr > 0, "lr", "a positive number"), (self.optimizer in ("sgd", "adam", "adamw"), "optimizer", "'sgd', 'adam' or 'adamw'"),
                  (0 <= self.momentum < 1, "momentum", "in [0, 1)"), (self.weight_decay >= 0, "weight_decay", "≥ 0"),
                  (self.reset in ("episodic", "online"), "reset", "'episodic' or 'online'"),
                  (self.samples_per_batch >= 1, "samples_per_batch", "an integer ≥ 1")]
        for ok, key, expected in checks:
            if not ok:
                raise ValueError(f"test-time setting {key}={getattr(self, key)!r}: expected {expected}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, where: str = "ttt") -> "TestTimeSettings":
        """Settings from a config section; a key that is no setting is an error naming the nearest one."""
        known = [f.name for f in fields(cls)]
        values = dict(section or {})
        for key in values:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                raise ValueError(f"config {where}.{key}: not a test-time setting"
                                 + (f" (did you mean {near[0]!r}?)" if near else f"; expected one of {', '.join(known)}"))
        for key in ("trainable", "betas"):  # config lists are tuples here
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)


_EXPECTED_TYPE = {**dict.fromkeys(("steps", "copies", "samples_per_batch", "seed"), "an integer"),
                  **dict.fromkeys(("lr", "momentum", "weight_decay"), "a number"), "betas": "two numbers",
                  "trainable": "a preset name or a list of name patterns"}


def _is_number(value: Any, integer: bool = False) -> bool:
    return isinstance(value, (int,) if integer else (int, float)) and not isinstance(value, bool)


def _has_type(name: str, value: Any) -> bool:
    """Whether a setting's value has its type (each field checked on its own, so the error names it)."""
    expected = _EXPECTED_TYPE.get(name)
    if expected in ("an integer", "a number"):
        return _is_number(value, integer=expected == "an integer")
    if name == "betas":
        return isinstance(value, tuple) and len(value) == 2 and all(_is_number(b) for b in value)
    if name == "trainable":
        return isinstance(value, str) or (isinstance(value, tuple) and all(isinstance(p, str) for p in value))
    return isinstance(value, str)  # optimizer, reset


@dataclass
class TestTimeResult:
    """Per test sample: ``logits`` (samples × steps+1 × classes; index 0 before any step) and
    ``losses`` (samples × steps, the self-supervised loss each step took)."""

    logits: torch.Tensor
    losses: torch.Tensor
    online_state: tuple | None = None  # online reset: where the stream stands, for the next call
    __test__ = False



def select_trainable(model: nn.Module, trainable: str | Sequence[str]) -> list[str]:
    """The parameter names adapted at test time: a preset of the model or glob patterns (``-``
    excludes). A pattern that matches no parameter is an error (a typo would otherwise freeze it)."""
    presets: Mapping[str, Sequence[str]] = getattr(model, "test_time_presets", {})
    if isinstance(trainable, str):
        if trainable not in presets:
            raise ValueError(f"trainable={trainable!r} is not a preset of {type(model).__name__} "
                             f"({', '.join(presets) or 'none'}); give a preset or a list of name patterns")
        patterns: Sequence[str] = presets[trainable]
    else:
        patterns = list(trainable)
    names = [name for name, p in model.named_parameters()]
    fixed = {name for name, p in model.named_parameters() if not p.requires_grad}  # sin-cos tables stay as they are
    chosen: set[str] = set()
    for pattern in patterns:
        exclude = pattern.startswith("-")
        found = fnmatch.filter(names, pattern[1:] if exclude else pattern)
        if not found:
            roots = sorted({name.split(".")[0] for name in names})
            raise ValueError(f"trainable pattern {pattern!r} matches no parameter of {type(model).__name__} "
                             f"(parameter names start with {', '.join(roots)})")
        chosen = chosen - set(found) if exclude else chosen | set(found)
    selected = [name for name in names if name in chosen and name not in fixed]
    if not selected:
        raise ValueError(f"trainable={trainable!r} leaves no parameter of {type(model).__name__} to adapt "
                         f"(fixed tables such as sin-cos position embeddings never adapt)")
    return selected


def reached_by_loss(model: nn.Module, names: Sequence[str], views: dict[str, torch.Tensor]) -> list[str]:
    """Those of ``names`` the self-supervised loss reaches. ``torch.func`` gives the others a zero
    gradient, which weight decay or momentum would still move; torch.optim leaves them alone (no
    gradient at all), and so does the loop."""
    named = dict(model.named_parameters())
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        with torch.enable_grad():  # also when the caller evaluates under no_grad
            grads = torch.autograd.grad(model.test_time_loss(views), [named[n] for n in names], allow_unused=True)
    finally:  # a pass in training mode may have moved running statistics: the model stays as it was
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    return [name for name, grad in zip(names, grads) if grad is not None]


class FunctionalOptimizer:
    """SGD (momentum, weight decay as L2), Adam and AdamW written over dicts of tensors, with the
    update rules of ``torch.optim`` (tested against it): it runs per sample under ``vmap``."""

    def __init__(self, settings: TestTimeSettings) -> None:
        self.settings = settings

    def init_state(self, params: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        if self.settings.optimizer == "sgd":
            return {"momentum": {k: torch.zeros_like(v) for k, v in params.items()}}
        return {"m": {k: torch.zeros_like(v) for k, v in params.items()}, "v": {k: torch.zeros_like(v) for k, v in params.items()}}

    def step(self, params: dict[str, torch.Tensor], grads: Mapping[str, torch.Tensor], state: dict[str, dict[str, torch.Tensor]],
             count: int) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
        """One update; ``count`` is the 1-based step number (SGD's first momentum step and Adam's bias correction)."""
        s, lr, wd = self.settings, self.settings.lr, self.settings.weight_decay
        new_params, new_state = {}, {key: {} for key in state}
        for name, p in params.items():
            g = grads[name]
            if s.optimizer == "sgd":
                g = g + wd * p if wd else g
                if s.momentum:  # torch: the buffer starts as the first gradient, no dampening
                    g = g if count == 1 else s.momentum * state["momentum"][name] + g
                new_state["momentum"][name] = g
                new_params[name] = p - lr * g
                continue
            if s.optimizer == "adamw":
                p = p * (1 - lr * wd)
            elif wd:
                g = g + wd * p
            b1, b2 = s.betas
            m = b1 * state["m"][name] + (1 - b1) * g
            v = b2 * state["v"][name] + (1 - b2) * g * g
            new_state["m"][name], new_state["v"][name] = m, v
            denom = (v / (1 - b2 ** count)).sqrt() + 1e-8
            new_params[name] = p - (lr / (1 - b1 ** count)) * m / denom
        return new_params, new_state


class _Call(nn.Module):
    """Calls one method of the wrapped model, so ``functional_call`` reaches more than ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, method: str, *args: Any) -> Any:
        return getattr(self.model, method)(*args)


def adapt_and_predict(model: nn.Module, images: torch.Tensor, settings: TestTimeSettings,
                      indices: Iterable[int] | None = None, log: Callable[[str], Any] | None = None,
                      keep_weights: bool = False, online_state: tuple | None = None
                      ) -> TestTimeResult | tuple[TestTimeResult, list[dict[str, torch.Tensor]]]:
    """Adapt ``model`` to each of ``images`` (N×C×H×W, already normalised, on the model's device)
    and predict after every step. ``indices``: each sample's position in the test set (its random
    stream; default 0..N-1). ``keep_weights``: also return each sample's adapted trainable weights
    (episodic) or the weights after it (online), for inspection and tests. ``online_state``: an
    earlier call's ``result.online_state``, to go on along a stream given in pieces. The model
    itself is left as it was."""
    indices = list(range(len(images))) if indices is None else list(indices)
    if len(indices) != len(images):
        raise ValueError(f"{len(indices)} indices for {len(images)} images")
    if not len(images):
        raise ValueError("test-time training got no images")
    device = images.device
    was_training = model.training
    try:
        model.train()
        probe_views = {k: v.to(device) for k, v in model.test_time_views(
            images[0].cpu(), settings.copies, torch.Generator().manual_seed(0)).items()}
        names = reached_by_loss(model, select_trainable(model, settings.trainable), probe_views)
    finally:
        model.train(was_training)
    if not names:
        raise ValueError(f"trainable={settings.trainable!r}: the self-supervised loss of {type(model).__name__} reaches "
                         f"none of these parameters")
    caller = _Call(model)
    trained = {f"model.{k}": v.detach() for k, v in model.named_parameters()}
    fixed = {**{k: v for k, v in trained.items() if k[len("model."):] not in names},
             **{f"model.{k}": v for k, v in model.named_buffers()}}
    start = {k: trained[f"model.{k}"] for k in names}
    optimizer = FunctionalOptimizer(settings)

    def loss_of(params: dict[str, torch.Tensor], views: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(caller, ({f"model.{k}": v for k, v in params.items()}, fixed),
                                          ("test_time_loss", views))

    def logits_of(params: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(caller, ({f"model.{k}": v for k, v in params.items()}, fixed),
                                          ("classify", {"inputs": image[None]}))[0]

    step_grads = torch.func.vmap(torch.func.grad_and_value(loss_of))
    all_logits, all_losses, kept = [], [], []
    online = settings.reset == "online"
    chunk = 1 if online else settings.samples_per_batch
    carried: tuple[dict, dict, int] | None = online_state if online else None
    try:
        with explicit_attention(model):
            for first in range(0, len(images), chunk):
                batch, batch_indices = images[first:first + chunk], indices[first:first + chunk]
                generators = [torch.Generator().manual_seed(mix_seed(settings.seed, index, 7)) for index in batch_indices]
                if carried is None:  # episodic: every chunk starts from the trained weights
                    params = {k: v.expand(len(batch), *v.shape).clone() for k, v in start.items()}
                    state = optimizer.init_state(params)
                    count = 0
                else:
                    params, state, count = carried
                logits, losses = [_predict(model, logits_of, params, batch)], []
                for _ in range(settings.steps):
                    views = _stack([model.test_time_views(image.cpu(), settings.copies, g) for image, g in zip(batch, generators)], device)
                    model.train()
                    grads, loss = _vmapped(step_grads, params, views)
                    count += 1
                    params, state = optimizer.step(params, grads, state, count)
                    params = {k: v.detach() for k, v in params.items()}
                    losses.append(loss.detach())
                    logits.append(_predict(model, logits_of, params, batch))
                all_logits.append(torch.stack(logits, 1))
                all_losses.append(torch.stack(losses, 1) if losses else torch.zeros(len(batch), 0))
                if online:
                    carried = (params, state, count)
                if keep_weights:
                    kept.extend({k: v[i] for k, v in params.items()} for i in range(len(batch)))
                if log is not None:
                    log(f"test-time training: {min(first + chunk, len(images))}/{len(images)} samples")
    finally:
        model.train(was_training)
    result = TestTimeResult(torch.cat(all_logits).cpu(), torch.cat(all_losses).cpu(), carried)
    return (result, kept) if keep_weights else result


def _vmapped(step_grads: Callable, params: dict[str, torch.Tensor], views: dict[str, torch.Tensor]) -> Any:
    """One batched step; what vmap cannot run is said in terms of the model."""
    try:
        return step_grads(params, views)
    except RuntimeError as error:
        text = str(error)
        if "randomness" in text or "in-place" in text or "inplace" in text:
            raise ValueError("test-time training runs every sample's own weights under torch.func.vmap, which cannot run "
                             "random operations (dropout, drop-path: build the model with drop_path_rate=0) or update "
                             "buffers in place (BatchNorm in training mode: use GroupNorm, as TTT does) in the "
                             f"self-supervised pass ({text.splitlines()[0]})") from None
        raise


@torch.no_grad()
def _predict(model: nn.Module, logits_of: Callable, params: dict[str, torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
    model.eval()  # prediction as at test time: no dropout, running statistics
    return torch.func.vmap(logits_of)(params, batch).float()


def _stack(views: list[dict[str, torch.Tensor]], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: torch.stack([v[key] for v in views]).to(device) for key in views[0]}
