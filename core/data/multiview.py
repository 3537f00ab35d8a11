"""Several views of one sample (CMAE, MACRL, SDMAE, ...): a transform that returns named,
normalised views, which :class:`~maekit.data.views.AugmentedView` carries in the batch by name
(``batch["views"][name]``, B×C×H×W each; ``batch["inputs"]`` is the first view).

A view is a list of steps (dicts with a ``type`` from :data:`VIEW_STEPS`); ``shared`` steps run
once per sample before the views branch, so views share their crop and flip when they are
shared (CMAE's RandomResizedCrop to 256 + flip, SDMAE's resize to 256) and differ where their
own steps draw (CMAE's pixel shift and colour, SDMAE's random crop). Every draw comes from
torch's generator: the shared steps from the sample's own seed (set per virtual index by
``AugmentedView``), each view's steps from a seed of its own, derived from the sample's and the
view's position, so one view's draws never depend on how many draws another view made. A
resumed run, and a DDP run of the same global batch, sees the same views.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Mapping, Sequence

import torch

from maekit.data.views import _normalise, mix_seed

__all__ = ["named_views", "MultiView", "ViewSteps", "VIEW_STEPS", "view_step", "first_view_size"]

Step = Callable[[torch.Tensor], torch.Tensor]


def _interpolation(name: str) -> Any:
    from torchvision.transforms.v2 import InterpolationMode

    modes = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
             "nearest": InterpolationMode.NEAREST}
    if name not in modes:
        raise ValueError(f"interpolation must be one of {', '.join(modes)}, got {name!r}")
    return modes[name]


def _chance(p: float, step: Step) -> Step:
    """``step`` applied with probability ``p`` (one draw from torch's generator)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a step's probability p must be in [0, 1], got {p!r}")
    return lambda image: step(image) if torch.rand(()) < p else image


def resized_crop(size: int | Sequence[int], scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), interpolation: str = "bicubic") -> Step:
    """RandomResizedCrop (torchvision's draw), antialiased."""
    from torchvision.transforms import v2

    return v2.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio), interpolation=_interpolation(interpolation),
                                antialias=True)


def resize(size: int, interpolation: str = "bicubic") -> Step:
    """Shorter side to ``size`` (torchvision's ``Resize(int)``; SDMAE's ``Resize(224 / 0.875)``)."""
    from torchvision.transforms import v2

    return v2.Resize(size, interpolation=_interpolation(interpolation), antialias=True)


def crop(size: int, position: str = "center", max_shift: int = 0) -> Step:
    """A ``size``×``size`` crop: ``top_left`` (CMAE's online view, SDMAE's first view),
    ``center``, ``random`` (RandomCrop), or ``shift``: top-left corner at (dy, dx), each drawn
    uniformly from 0..``max_shift`` (CMAE's ``ShiftPixel``, 31 at 224 from 256)."""
    from torchvision.transforms.v2 import functional as TF

    positions = ("top_left", "center", "random", "shift")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"crop size is one side in pixels (a square crop), got {size!r}")
    if position not in positions:
        raise ValueError(f"crop position must be one of {', '.join(positions)}, got {position!r}")
    if position != "shift" and max_shift:
        raise ValueError(f"crop max_shift is for position='shift' (got position={position!r})")
    if position == "shift" and not (isinstance(max_shift, int) and max_shift >= 1):
        raise ValueError(f"crop position='shift' needs max_shift >= 1 (CMAE: 31 at 224 from 256), got {max_shift!r}")

    def apply(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        spare_y, spare_x = height - size, width - size
        if position == "shift":
            spare_y, spare_x = min(spare_y, max_shift), min(spare_x, max_shift)
            if spare_y < max_shift or spare_x < max_shift:
                raise ValueError(f"a {size}-px crop shifted by up to {max_shift} px needs an image of at least "
                                 f"{size + max_shift} px a side, got {height}×{width} (make the shared crop larger)")
        if spare_y < 0 or spare_x < 0:
            raise ValueError(f"a {size}-px crop needs an image of at least {size} px a side, got {height}×{width}")
        if position == "top_left":
            top = left = 0
        elif position == "center":
            top, left = spare_y // 2, spare_x // 2
        else:  # random, shift: uniform over the allowed corners
            top = int(torch.randint(spare_y + 1, ()))
            left = int(torch.randint(spare_x + 1, ()))
        return TF.crop(image, top, left, size, size)

    return apply


def hflip(p: float = 0.5) -> Step:
    """Horizontal flip with probability ``p``."""
    from torchvision.transforms.v2 import functional as TF

    return _chance(p, TF.horizontal_flip)


def color_jitter(brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1,
                 p: float = 0.8) -> Step:
    """ColorJitter (torchvision's random order of the four), applied with probability ``p``.
    Saturation and hue leave a one-channel image unchanged."""
    from torchvision.transforms import v2

    jitter = v2.ColorJitter(brightness, contrast, saturation, hue)

    def apply(image: torch.Tensor) -> torch.Tensor:
        if image.shape[0] == 1:  # grey: brightness and contrast only (saturation/hue need colour)
            return v2.ColorJitter(brightness, contrast)(image)
        return jitter(image)

    return _chance(p, apply)


def grayscale(p: float = 0.2) -> Step:
    """RandomGrayscale, keeping the channel count (a no-op on one channel)."""
    from torchvision.transforms.v2 import functional as TF

    return _chance(p, lambda image: image if image.shape[0] == 1 else TF.rgb_to_grayscale(image, image.shape[0]))


def gaussian_blur(sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5, kernel_size: int | None = None) -> Step:
    """Gaussian blur with σ uniform in ``sigma``, probability ``p``; the kernel is the odd size
    nearest a tenth of the image side unless given (BYOL's 23 at 224)."""
    from torchvision.transforms import v2

    def apply(image: torch.Tensor) -> torch.Tensor:
        kernel = kernel_size or max(3, int(0.1 * min(image.shape[-2:])) // 2 * 2 + 1)
        return v2.GaussianBlur(kernel, sigma=tuple(sigma))(image)

    return _chance(p, apply)


def solarize(threshold: float = 0.5, p: float = 0.2) -> Step:
    """Solarisation with probability ``p``: intensities at or above ``threshold`` (on [0, 1])
    inverted, as torchvision's ``RandomSolarize`` and DINO's / iBOT's second global crop (p 0.2)."""
    return _chance(p, lambda image: torch.where(image >= threshold, 1 - image, image))


def noise(std: float = 0.05) -> Step:
    """Additive Gaussian noise of ``std`` (on [0, 1] intensities), clamped back to [0, 1]."""
    return lambda image: (image + std * torch.randn(image.shape)).clamp(0, 1)


#: The steps a view is made of, by the ``type`` a config names them with.
VIEW_STEPS: dict[str, Callable[..., Step]] = {
    "resized_crop": resized_crop, "resize": resize, "crop": crop, "hflip": hflip, "color_jitter": color_jitter,
    "grayscale": grayscale, "gaussian_blur": gaussian_blur, "solarize": solarize, "noise": noise,
}


def _near(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of {', '.join(known)})"


def view_step(spec: Mapping[str, Any], where: str) -> Step:
    """One step from ``{"type": name, **arguments}``; an unknown type or argument is a ValueError
    naming ``where`` (e.g. ``views.target[1]``) and the nearest known name."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"{where}: a view step is a dict with a 'type' key, got {spec!r}")
    kind = spec["type"]
    if kind not in VIEW_STEPS:
        raise ValueError(f"{where}: unknown view step {kind!r}{_near(str(kind), list(VIEW_STEPS))}")
    make = VIEW_STEPS[kind]
    arguments = {key: value for key, value in spec.items() if key != "type"}
    known = list(inspect.signature(make).parameters)
    for key in arguments:
        if key not in known:
            raise ValueError(f"{where}: {kind} has no argument {key!r}{_near(key, known)}")
    try:
        return make(**arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def first_view_size(config: Mapping[str, Any]) -> int | tuple[int, ...] | None:
    """The size (side, or (h, w)) the first view of a ``views`` transform config comes out at:
    that of its last crop or resized crop, else of the shared steps'; None when the steps leave
    it to the image (a ``resize`` sets only the shorter side), which evaluation refuses."""
    views = config.get("views") or {}
    first = next(iter(views.values()), []) if isinstance(views, Mapping) else []
    for step in [*reversed(list(first)), *reversed(list(config.get("shared") or []))]:
        kind = step.get("type") if isinstance(step, Mapping) else None
        if kind in ("crop", "resized_crop"):
            size = step.get("size")
            return tuple(size) if isinstance(size, (list, tuple)) else size
        if kind == "resize":
            return None
    return None


class ViewSteps:
    """Steps applied in order (a named view's, or the shared ones)."""

    def __init__(self, specs: Sequence[Mapping[str, Any]], where: str) -> None:
        if isinstance(specs, Mapping) or not isinstance(specs, Sequence):
            raise ValueError(f"{where}: a view is a list of steps, got {specs!r}")
        self.steps = [view_step(spec, f"{where}[{i}]") for i, spec in enumerate(specs)]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            image = step(image)
        return image


class MultiView:
    """Named views of one image (C×H×W in [0, 1]): ``{name: normalised C×h×w}``, in the order of
    ``views`` (the first is the sample's ``inputs``).

    ``shared``: steps run once before the views branch. ``views``: ``{name: [steps]}``.
    ``mean``/``std``: normalisation of every view (ImageNet statistics for RGB by default).
    """

    def __init__(self, views: Mapping[str, Sequence[Mapping[str, Any]]], shared: Sequence[Mapping[str, Any]] = (),
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        if not isinstance(views, Mapping) or not views:
            raise ValueError(f"views: a dict of named views (e.g. online=[...], target=[...]), got {views!r}")
        self.shared = ViewSteps(shared, "shared")
        self.views = {str(name): ViewSteps(steps, f"views.{name}") for name, steps in views.items()}
        self.mean, self.std = mean, std

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        base = self.shared(image).clamp(0, 1)
        # one number from the sample's generator seeds every view's own generator
        sample_seed = int(torch.randint(2**62, ()))
        out = {}
        for position, (name, steps) in enumerate(self.views.items()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(mix_seed(sample_seed, position))
                out[name] = _normalise(steps(base).clamp(0, 1), self.mean, self.std)
        return out


def named_views(batch: Any, names: Sequence[str], method: str) -> list[torch.Tensor]:
    """The views ``names`` of a training batch (``batch["views"]``, made by the ``views``
    transform); a ValueError saying what the config must give when one is missing."""
    views = batch.get("views") if isinstance(batch, dict) else None
    expected = ", ".join(f"{name}=[...]" for name in names)
    if not isinstance(views, dict):
        raise ValueError(f"{method} trains on named views: set data.transform=dict(type='views', views=dict({expected})) "
                         f"(the batch has no views)")
    missing = [name for name in names if name not in views]
    if missing:
        raise ValueError(f"{method} needs the view(s) {', '.join(missing)}; data.transform's views are "
                         f"{', '.join(views)} (expected {expected})")
    return [views[name] for name in names]
