"""A sampler that hands out virtual indices, so each pass over the data has its own randomness."""
from __future__ import annotations

from typing import Iterator

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.registry import DATA_SAMPLERS

__all__ = ["VirtualIndexSampler"]


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
