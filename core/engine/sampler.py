"""A sampler that hands out virtual indices, so each pass over the data has its own randomness."""
from __future__ import annotations

from typing import Iterator

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.registry import DATA_SAMPLERS

__all__ = ["VirtualIndexSampler", "BalancedVirtualIndexSampler"]


@DATA_SAMPLERS.register_module(name="MaekitVirtualIndexSampler")
class VirtualIndexSampler(InfiniteSampler):
    """mmengine's ``InfiniteSampler`` (one seeded permutation per pass, ranks interleaved) yielding
    ``pass × len(dataset) + index``. :class:`maekit.data.views.AugmentedView` maps it back to the
    sample and seeds that sample's crop and mask with it."""

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        epoch = 0
        while True:
            order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
            yield from (order + epoch * self.size).tolist()
            epoch += 1


@DATA_SAMPLERS.register_module(name="MaekitBalancedSampler")
class BalancedVirtualIndexSampler(InfiniteSampler):
    """``data.sampler="balanced"``: each pass draws ``len(dataset)`` samples with replacement, in
    proportion to the dataset's ``sample_weights()`` (AudioSet's label-balancing weights in
    maekit-audio, as the reference's weighted sampler). Virtual index ``(pass·len + draw)·len +
    sample``, so every draw — repeats included — gets its own augmentation and mask seed."""

    def __init__(self, dataset, seed: int | None = None, **options) -> None:
        super().__init__(dataset, shuffle=True, seed=seed, **options)
        source = getattr(dataset, "dataset", dataset)  # the training view wraps the dataset
        weights = getattr(source, "sample_weights", None)
        if weights is None:
            raise ValueError(f"data.sampler='balanced' needs a dataset with sample_weights(); "
                             f"{type(source).__name__} has none (use sampler='shuffle')")
        self.weights = torch.as_tensor(weights(), dtype=torch.float64)
        if self.weights.shape != (self.size,) or (self.weights < 0).any() or not self.weights.sum() > 0:
            raise ValueError(f"{type(source).__name__}.sample_weights() must give one non-negative weight per sample "
                             f"({self.size}), not all zero")

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        drawn = 0
        while True:
            picks = torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
            yield from ((drawn + torch.arange(self.size)) * self.size + picks).tolist()
            drawn += self.size
