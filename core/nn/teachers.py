"""Teachers: modules whose outputs are targets — frozen, or an exponential moving average (EMA) of a
student module.

A :class:`Teacher` wraps a module that always runs in eval mode under ``no_grad``; its parameters
never take gradients, so the optimiser never sees them (maekit's optimiser constructors leave
frozen parameters out). It lives inside the method (usually inside a
:class:`~maekit.nn.targets.FeatureTarget`), so its weights are part of the method's state dict:
checkpoints hold an EMA teacher and a resumed run continues from it bit for bit. ``maekit export``
writes the student's encoder only.

An EMA teacher follows the student module at the dotted path ``student`` of the method that owns
it (``"encoder"``): after an optimiser step, every parameter and floating-point buffer of the
teacher becomes ``m·teacher + (1 − m)·student`` of the same name, with ``m`` from the ``momentum``
schedule, every iteration (BootMAE, timm's ``ModelEma``) or once per epoch (SdAE). The training
engine's ``TeacherUpdateHook`` calls :func:`update_teachers` after each optimiser step; a loop of
one's own calls it too. The update is deterministic in the student's weights, which DDP keeps equal
on every rank, so teachers stay equal on every rank.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from maekit.nn.schedules import ConstantSchedule, Schedule, build_schedule
from maekit.structures import Tokens

__all__ = ["Teacher", "ema_teacher", "frozen_teacher", "image_mae_teacher", "teachers_in", "update_teachers", "Tap",
           "TEACHER_LAYOUTS", "IMAGE_TEACHER_KEYS"]

#: Where a teacher's features are read: a block index as in
#: :meth:`~maekit.nn.encoder.TokenEncoder.forward_intermediates` (before the final norm; -1 the
#: last block), or ``"output"`` — the module's own output (after its final norm).
Tap = int | str


class Teacher(nn.Module):
    """A frozen or EMA module (see the module docstring).

    ``mode``: "frozen" or "ema". ``momentum``: a number or schedule (EMA only). ``update_every``:
    "iter" or "epoch". ``student``: the dotted path, inside the owning method, of the module it
    follows. ``source``: where a frozen teacher's weights came from (with their sha256).
    ``batch_stats``: its BatchNorm layers normalise with the batch's own statistics while the
    owner trains, as a momentum branch left in train mode does (CMAE's target projector, SDMAE's
    momentum head, MoCo); otherwise (and in eval) with their running statistics.
    """

    updates: torch.Tensor

    def __init__(self, module: nn.Module, mode: str = "ema", momentum: Schedule | float | Mapping[str, Any] = 0.999,
                 update_every: str = "iter", student: str = "encoder", source: str | None = None,
                 batch_stats: bool = False) -> None:
        super().__init__()
        if mode not in ("frozen", "ema"):
            raise ValueError(f"teacher mode must be 'frozen' or 'ema', got {mode!r}")
        if update_every not in ("iter", "epoch"):
            raise ValueError(f"teacher update_every must be 'iter' or 'epoch', got {update_every!r}")
        self.module = module.requires_grad_(False).eval()
        self.mode, self.update_every, self.student, self.source = mode, update_every, student, source
        self.batch_stats = bool(batch_stats)
        self.momentum = build_schedule(momentum)
        if mode == "ema" and update_every == "epoch" and not self.momentum.by_epoch and not isinstance(self.momentum, ConstantSchedule):
            raise ValueError(f"a teacher updated once per epoch needs a momentum schedule counted in epochs "
                             f"(by_epoch=True), got {self.momentum!r}")
        # how many EMA updates it has taken (in checkpoints: a resumed run can say where it is)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.train(self.training)  # built in train mode: batch_stats BatchNorm layers train already

    def train(self, mode: bool = True) -> "Teacher":
        super().train(mode)
        self.module.eval()  # a teacher never drops paths or tokens
        if mode and self.batch_stats:
            for layer in self.module.modules():
                if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)):
                    layer.train()
        return self

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped module's output, in eval mode and without gradients."""
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def features(self, tokens: Tokens, tap: Tap = "output") -> torch.Tensor:
        """The wrapped encoder's states at ``tap`` for ``tokens``: B×(P+N)×D, prefix tokens first."""
        if tap == "output":
            return self.module(tokens)
        if not isinstance(tap, int):
            raise ValueError(f"a teacher tap is a block index or 'output', got {tap!r}")
        encoder: Any = self.module  # a TokenEncoder
        found = encoder.forward_intermediates(tokens, [tap]).features
        return next(iter(found.values()))

    @property
    def num_prefix_tokens(self) -> int:
        return int(getattr(self.module, "num_prefix_tokens", 0))

    # -- EMA -----------------------------------------------------------------------------------
    def due(self, iteration: int, iters_per_epoch: int | None, stepped: bool = True) -> bool:
        """Whether an EMA update follows ``iteration``: every optimiser step (``stepped`` is False
        for a micro-batch inside a gradient-accumulation window), or the last iteration of each
        epoch whatever the accumulation (SdAE updates after its epoch loop)."""
        if self.mode != "ema":
            return False
        if self.update_every == "iter":
            return stepped
        if not iters_per_epoch:
            raise ValueError("a teacher updated once per epoch needs iters_per_epoch (schedule.iters_per_epoch)")
        return (iteration + 1) % iters_per_epoch == 0

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        """teacher ← m·teacher + (1 − m)·student, parameter by parameter (and floating buffers),
        matched by name; other buffers are copied."""
        ours, theirs = _state(self.module), _state(student)
        missing = sorted(set(ours) - set(theirs))
        if missing:
            raise ValueError(f"the teacher's {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                             f"have no counterpart in the student {type(student).__name__}")
        floating = [name for name, t in ours.items() if t.is_floating_point()]
        targets = [ours[name] for name in floating]
        torch._foreach_mul_(targets, momentum)
        torch._foreach_add_(targets, [theirs[name].detach().to(ours[name].dtype) for name in floating], alpha=1.0 - momentum)
        for name, tensor in ours.items():
            if not tensor.is_floating_point():
                tensor.copy_(theirs[name])
        self.updates += 1

    @torch.no_grad()
    def copy_from(self, student: nn.Module) -> None:
        """Every weight of the student's counterpart copied in (an update with momentum 0)."""
        self.update(student, 0.0)

    def step(self, owner: nn.Module, iteration: int, iters_per_epoch: int | None = None,
             stepped: bool = True) -> float | None:
        """The update due after ``iteration`` (see :meth:`due`), with the scheduled momentum;
        returns the momentum used, or None when no update was due."""
        if not self.due(iteration, iters_per_epoch, stepped):
            return None
        momentum = self.momentum(iteration, iters_per_epoch)
        self.update(owner.get_submodule(self.student), momentum)
        return momentum

    def extra_repr(self) -> str:
        if self.mode == "frozen":
            return f"mode=frozen, source={self.source or 'built'}"
        return f"mode=ema, student={self.student!r}, momentum={self.momentum!r}, every {self.update_every}"


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def teachers_in(model: nn.Module) -> Iterator[tuple[str, Teacher]]:
    """Every :class:`Teacher` inside ``model``, with its name."""
    for name, module in model.named_modules():
        if isinstance(module, Teacher):
            yield name, module


def update_teachers(model: nn.Module, iteration: int, iters_per_epoch: int | None = None,
                    stepped: bool = True) -> dict[str, float]:
    """Apply the EMA updates due after ``iteration`` to every teacher in ``model`` (each follows
    its ``student`` path inside ``model``; a DDP wrapper is looked through). ``stepped``: whether
    the optimiser stepped at this iteration (False inside a gradient-accumulation window).
    Returns ``{name: momentum}``."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    used = {}
    for name, teacher in teachers_in(model):
        momentum = teacher.step(model, iteration, iters_per_epoch, stepped)
        if momentum is not None:
            used[name] = momentum
    return used


def ema_teacher(module: nn.Module | dict, momentum: Schedule | float | Mapping[str, Any] = 0.999,
                update_every: str = "iter", student: str = "encoder", batch_stats: bool = False) -> Teacher:
    """An EMA teacher around ``module`` (built, or a config of a registered encoder). Give a copy of
    the student to start from its weights (BootMAE), or a fresh module to start from its own
    random init (SdAE). ``batch_stats``: see :class:`Teacher`."""
    from maekit.registry import build

    return Teacher(build("encoder", module), "ema", momentum, update_every, student, batch_stats=batch_stats)


def frozen_teacher(module: nn.Module | dict, checkpoint: str | Path | None = None,
                   convert: Any = None, prefixes: Sequence[str] = ()) -> Teacher:
    """A frozen teacher: ``module`` (built, or a registered encoder's config) with the weights of
    ``checkpoint`` (safetensors or a weights-only torch file; nothing pickled runs), after
    stripping the first matching key prefix of ``prefixes`` and after ``convert``: a callable on
    the state dict, or the name of a layout ``maekit convert`` reads ("official" for the MAE
    reference's checkpoints, "transformers", "maekit"), whose encoder is taken. Every key must
    match: a missing or unexpected one is an error naming it. The file and its sha256 are
    recorded in ``source``."""
    from maekit.io.checkpoint import load_state_dict
    from maekit.registry import build

    if isinstance(convert, str):
        from maekit.io.convert import convert_state_dict, maekit_to_timm

        layout = convert
        convert = lambda state: maekit_to_timm(convert_state_dict(state, layout, "maekit"))  # noqa: E731

    built = build("encoder", module)
    source = None
    if checkpoint is not None:
        path = Path(checkpoint)
        state = load_state_dict(path)
        for prefix in prefixes:
            if any(key.startswith(prefix) for key in state):
                state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
                break
        if convert is not None:
            from maekit.io.checkpoint import CheckpointError

            try:
                state = convert(state)
            except (ValueError, CheckpointError) as error:  # a file in another layout: say which file
                raise ValueError(f"{path}: {error}") from None
        try:
            result = built.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shapes that do not fit: PyTorch's message lists them
            raise ValueError(f"{path}: does not fit the teacher {type(built).__name__}: "
                             f"{str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error}") from None
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f"{path}: does not fit the teacher {type(built).__name__}: missing "
                             f"{result.missing_keys[:5] or 'none'}, unexpected {result.unexpected_keys[:5] or 'none'}")
        source = f"{path} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()})"
    return Teacher(built, "frozen", student="", source=source)


#: Checkpoint layouts a frozen image teacher (a timm ViT) is read from: the MAE reference's own files
#: (``mae_pretrain_vit_base.pth``, ``mae_visualize_vit_large.pth``), this toolkit's runs, or MoCo v3's
#: (facebookresearch/moco-v3 ``vit-b-300ep.pth.tar``: ``state_dict`` of ``module.base_encoder.*`` in
#: timm's names; the projection ``head`` and the momentum encoder and predictor are not read).
TEACHER_LAYOUTS = ("official", "maekit", "mocov3")
#: The keys of a config's image-MAE teacher section.
IMAGE_TEACHER_KEYS = ("checkpoint", "layout", "size", "encoder_name", "encoder")


def image_mae_teacher(spec: Mapping[str, Any], img_size: Any, patch_size: int | None, in_chans: int,
                      method: str) -> Teacher:
    """A frozen image teacher from a config section ``dict(checkpoint=<file>, layout="official" |
    "maekit" | "mocov3", size=... or encoder_name=..., encoder=dict(...))`` (MVD, DMAE, TinyMIM,
    MILAN's stand-in): a timm ViT
    of that size at the student's image and patch size, loaded strictly from the file. An unknown
    key, a missing checkpoint or an unknown layout is a ValueError naming ``method``'s section."""
    from maekit.methods.mae import encoder_name_for

    unknown = sorted(set(spec) - set(IMAGE_TEACHER_KEYS))
    if unknown:
        raise ValueError(f"{method}: unknown key {unknown[0]!r} (expected {', '.join(IMAGE_TEACHER_KEYS)})")
    if not spec.get("checkpoint"):
        raise ValueError(f"{method} needs checkpoint=<file> (a frozen teacher distils nothing untrained)")
    layout = spec.get("layout", "official")
    if layout not in TEACHER_LAYOUTS:
        raise ValueError(f"{method} layout must be one of {', '.join(TEACHER_LAYOUTS)}, got {layout!r}")
    name = encoder_name_for(spec.get("size", "base"), spec.get("encoder_name"), method)
    overrides = dict(spec.get("encoder") or {})
    if layout == "mocov3" and spec.get("size", "base") == "small" and not spec.get("encoder_name"):
        # MoCo v3's ViT-S has 12 heads, timm's vit_small 6: the same weight shapes, other features
        overrides = {"num_heads": 12, **overrides}
    module = dict(type="vit_encoder", model_name=name, img_size=img_size, in_chans=in_chans, **overrides)
    if patch_size is not None:
        module["patch_size"] = patch_size
    if layout == "mocov3":
        return frozen_teacher(module, str(spec["checkpoint"]), convert=_without_projection_head,
                              prefixes=("module.base_encoder.", "base_encoder."))
    return frozen_teacher(module, str(spec["checkpoint"]), convert=layout, prefixes=("module.", "model."))


def _without_projection_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MoCo v3's base encoder without its projection MLP (``head.*``): timm ``VisionTransformer`` keys."""
    if not any(key.startswith("blocks.") for key in state):
        raise ValueError("no 'base_encoder.blocks.*' keys: not a MoCo v3 ViT checkpoint")
    return {key: value for key, value in state.items() if not key.startswith("head.")}
