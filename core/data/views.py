"""Training views of a dataset: the MAE augmentation, an evaluation transform, and
:class:`AugmentedView`, which makes every random choice a function of (seed, sample position).

Seeding per sample position (not from a global random state) is what makes a resumed run see
exactly the samples, crops and masks of an uninterrupted one, and a 2-process DDP run the same as
one process with the same global batch. The sampler (``maekit.engine.VirtualIndexSampler``) hands
out *virtual* indices ``pass × len(dataset) + index``, so a sample gets a new crop on every pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["normalise", "PlacedImage", "MAEAugment", "EvalTransform", "ResizeCenterCrop", "evaluation_transform", "TransformedView", "AugmentedView", "mix_seed", "default_mean_std",
           "transform_naming_source", "seeded_view"]


def mix_seed(*parts: int) -> int:
    """One 63-bit seed from several integers (seed, position, ...)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & (2**63 - 1)
    return value


def default_mean_std(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet statistics for 3 channels (as MAE), 0.5/0.5 per channel otherwise."""
    if channels == 3:
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return (0.5,) * channels, (0.5,) * channels


def normalise(x: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    """(x − mean) / std per channel of a C×H×W image; None: the default statistics for its channel
    count; a mean or std of another length than the channels is a ValueError."""
    if (mean is None) != (std is None):
        raise ValueError(f"give both mean and std, or neither (the defaults); got mean={mean!r}, std={std!r}")
    return _normalise(x, mean, std)


def _normalise(x: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    if mean is None or std is None:
        mean, std = default_mean_std(x.shape[0])
    if len(mean) != x.shape[0] or len(std) != x.shape[0]:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for an image with {x.shape[0]} channels")
    return (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


@dataclass
class PlacedImage:
    """A transformed image and where it came from: ``geometry`` = (top, left, height, width) of the
    crop as fractions of the source image, then 1.0 if it was flipped
    (:data:`maekit.nn.scores.GEOMETRY_FIELDS`). :class:`AugmentedView` puts the geometry in the
    sample as ``"geometry"``, so a score map of the whole image can follow the crop (AMT)."""

    image: torch.Tensor
    geometry: torch.Tensor


class MAEAugment:
    """The MAE pre-training augmentation: RandomResizedCrop(size, scale 0.2–1, bicubic), horizontal
    flip, normalisation (ImageNet statistics for RGB by default). ``track_geometry``: return a
    :class:`PlacedImage` that records the crop box and the flip (same crops and flips in law;
    drawn by torchvision's ``RandomResizedCrop.get_params``)."""

    def __init__(self, size: int | Sequence[int] = 224, scale: Sequence[float] = (0.2, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), flip: bool = True,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 track_geometry: bool = False) -> None:
        from torchvision.transforms import v2

        steps = [v2.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio),
                                      interpolation=v2.InterpolationMode.BICUBIC, antialias=True)]
        if flip:
            steps.append(v2.RandomHorizontalFlip())
        self.augment = v2.Compose(steps)
        self.mean, self.std = mean, std
        self.size = [size, size] if isinstance(size, int) else list(size)
        self.scale, self.ratio, self.flip, self.track_geometry = tuple(scale), tuple(ratio), flip, track_geometry

    def __call__(self, image: torch.Tensor) -> torch.Tensor | PlacedImage:
        if self.track_geometry:
            return self.placed(image)
        return _normalise(self.augment(image).clamp(0, 1), self.mean, self.std)

    def placed(self, image: torch.Tensor) -> PlacedImage:
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        top, left, height, width = RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
        out = TF.resized_crop(image, top, left, height, width, self.size, InterpolationMode.BICUBIC, antialias=True)
        flipped = self.flip and bool(torch.rand(1) < 0.5)
        if flipped:
            out = TF.horizontal_flip(out)
        source_h, source_w = image.shape[-2:]
        geometry = torch.tensor([top / source_h, left / source_w, height / source_h, width / source_w, float(flipped)])
        return PlacedImage(_normalise(out.clamp(0, 1), self.mean, self.std), geometry)


class EvalTransform:
    """Deterministic: resize to ``size`` (bicubic) and normalise, for probes and visualisation."""

    def __init__(self, size: int | Sequence[int] = 224, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean, self.std = mean, std  # None: the default statistics for the image's channels

    @classmethod
    def matching(cls, dataset: Dataset, train_transform: dict | None = None) -> "EvalTransform":
        """The evaluation twin of a training transform config: its size (a ``views`` transform's:
        the first view's) and statistics (else the dataset's own image size and the default
        statistics for its channel count)."""
        sample = dataset[0]["inputs"]
        train_transform = dict(train_transform or {})
        default_mean, default_std = default_mean_std(sample.shape[0])
        size = train_transform.get("size")
        if train_transform.get("type") == "views":  # named views: the size the first view comes out at
            from maekit.data.multiview import first_view_size

            size = first_view_size(train_transform)
            if size is None:  # a resize alone: the trained size depends on each image
                raise ValueError("the views transform's first view has no fixed size (no crop or resized_crop): end it "
                                 "in a crop, or give the config an eval_transform")
        return cls(size or tuple(sample.shape[-2:]),
                   train_transform.get("mean") or default_mean, train_transform.get("std") or default_std)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if tuple(image.shape[-2:]) != self.size:
            image = torch.nn.functional.interpolate(image[None], size=self.size, mode="bicubic",
                                                    align_corners=False)[0].clamp(0, 1)
        return _normalise(image, self.mean, self.std)


class ResizeCenterCrop:
    """The ImageNet test view of MAE's fine-tuning and of TTT-MAE: shorter side to ``resize``
    (bicubic, antialiased, as torchvision's ``Resize(int)``), centre crop ``size``, normalise."""

    def __init__(self, size: int = 224, resize: int = 256, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        if resize < size:
            raise ValueError(f"resize_center_crop: resize ({resize}) must be at least the crop size ({size})")
        self.size, self.resize, self.mean, self.std = size, resize, mean, std

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        resized = TF.resize(image, [self.resize], interpolation=InterpolationMode.BICUBIC, antialias=True)
        return _normalise(TF.center_crop(resized, [self.size, self.size]).clamp(0, 1), self.mean, self.std)


def evaluation_transform(dataset: Dataset, train_transform: dict | None = None, eval_transform: Any = None) -> Any:
    """The deterministic transform for evaluating on ``dataset``: a config's ``eval_transform`` (a
    registered transform, for inputs that are not images, e.g. skeleton clips) when given, else
    :meth:`EvalTransform.matching` of the training transform."""
    if eval_transform:
        from maekit.registry import build

        return build("transform", eval_transform) if isinstance(eval_transform, dict) else eval_transform
    return EvalTransform.matching(dataset, train_transform)


def transform_naming_source(transform: Any, inputs: Any, dataset: Any, index: int) -> Any:
    """``transform(inputs)``; a ValueError it raises names the sample's file where the dataset says
    which (``dataset.source_name(index)``), else its index."""
    try:
        return transform(inputs)
    except ValueError as error:
        raise ValueError(f"{_source_name(dataset, index)}: {error}") from None


class TransformedView(Dataset):
    """A dataset with a deterministic transform applied per item (before batching, so images of
    different sizes can be batched once resized)."""

    def __init__(self, dataset: Dataset, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        inputs = transform_naming_source(self.transform, sample["inputs"], self.dataset, index)
        return {**sample, "inputs": inputs, "label": sample.get("label", -1)}


class AugmentedView(Dataset):
    """A dataset seen through a transform, seeded per virtual index ``v`` (sample ``v % len``).

    Items are ``{"inputs", "label", "index": v}``; ``index`` also seeds the model's masking noise.
    The dataset's read runs under the same seed, so a dataset that samples while reading (a
    video clip's frames) must draw from torch's global generator.
    A transform returning named views (a dict, :class:`~maekit.data.multiview.MultiView`) puts
    them under ``"views"`` and the first under ``"inputs"``; one returning a :class:`PlacedImage`
    puts its crop's geometry under ``"geometry"``.
    Any other field of the dataset's samples (e.g. a caption's token ids, ``"text"``) travels
    with them untouched into the batch the method receives.
    """

    def __init__(self, dataset: Dataset | dict, transform: Any = None, seed: int = 0) -> None:
        from maekit.registry import build

        self.dataset = build("dataset", dataset)
        self.transform = build("transform", transform) if isinstance(transform, dict) else transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def metainfo(self) -> dict[str, Any]:
        """What mmengine's loops hand its visualizer (and otherwise warn is missing): the class names."""
        classes = getattr(self.dataset, "classes", None)
        return {"classes": list(classes)} if classes is not None else {}

    def __getitem__(self, virtual_index: int) -> dict[str, Any]:
        position = virtual_index % len(self.dataset)
        return seeded_view(lambda: self.dataset[position], self.transform, mix_seed(self.seed, virtual_index),
                           virtual_index, lambda: _source_name(self.dataset, position))


def _source_name(dataset: Any, index: int) -> str:
    return dataset.source_name(index) if hasattr(dataset, "source_name") else f"sample {index}"


def seeded_view(read: Callable[[], dict[str, Any]], transform: Any, seed: int, index: int,
                name: Callable[[], str]) -> dict[str, Any]:
    """One training item: ``read()`` and the transform under torch's generator seeded with
    ``seed`` (the caller's function of the sample's position), so a dataset that draws while
    reading (a video clip's start frame) draws reproducibly too; ``index`` seeds the masking noise.
    A transform's ValueError names the sample (``name()``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sample = read()
        image = sample["inputs"]
        if transform is not None:
            try:
                image = transform(image)
            except ValueError as error:
                raise ValueError(f"{name()}: {error}") from None
    # named views (maekit.data.multiview): the first is the inputs
    inputs = {"inputs": next(iter(image.values())), "views": image} if isinstance(image, dict) else {"inputs": image}
    if isinstance(image, PlacedImage):  # a crop that says where it came from
        inputs = {"inputs": image.image, "geometry": image.geometry}
    return {**sample, **inputs, "label": sample.get("label", -1), "index": index}
