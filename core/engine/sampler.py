"""A sampler that hands out virtual indices, so each pass over the data has its own randomness."""
from __future__ import annotations

import itertools
from typing import Iterator

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.registry import DATA_SAMPLERS

__all__ = ["VirtualIndexSampler", "BalancedVirtualIndexSampler", "OneSourcePerBatchSampler"]


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


@DATA_SAMPLERS.register_module(name="MaekitOneSourcePerBatchSampler")
class OneSourcePerBatchSampler(InfiniteSampler):
    """``data.sampler="one_source_per_batch"`` over a ``concat_sources`` dataset: every batch holds
    samples of one source (images and clips cannot share a batch), as OmniMAE's ``use_one``
    strategy. Each pass shuffles every source, cuts it into whole batches (a source's
    ``repeat_factor`` scales its count: 0.25 = a quarter of its batches per pass) and interleaves
    the batches in a seeded random order of source ids. Ranks take whole batches in turn, so
    a DDP run's global batch is one source too. Virtual indices ``pass × len + index`` as the
    shuffle sampler."""

    def __init__(self, dataset, batch_size: int, seed: int | None = None, **options) -> None:
        super().__init__(dataset, shuffle=True, seed=seed, **options)
        source = getattr(dataset, "dataset", dataset)  # the training view wraps the dataset
        offsets = getattr(source, "source_offsets", None)
        if offsets is None:
            raise ValueError(f"data.sampler='one_source_per_batch' needs a concat_sources dataset; "
                             f"got {type(source).__name__}")
        self.batch_size, self.offsets = int(batch_size), list(offsets)
        self.repeat_factors = list(source.repeat_factors)
        sizes = [end - start for start, end in zip(self.offsets, self.offsets[1:] + [self.size])]
        self.sizes = sizes
        for name, size in zip(source.source_names, sizes):
            if size < self.batch_size:
                raise ValueError(f"source {name} has {size} samples, fewer than one batch of {self.batch_size}")

    def batches_of_pass(self, epoch: int) -> list[list[int]]:
        """The batches (dataset indices) of one pass, in order."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        batches: list[list[int]] = []
        for offset, size, factor in zip(self.offsets, self.sizes, self.repeat_factors):
            order = (torch.randperm(size, generator=generator) + offset).tolist()
            count = max(1, int(size // self.batch_size * factor))
            batches.extend(order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(count))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def _infinite_indices(self) -> Iterator[int]:  # not used: ranks take whole batches
        raise NotImplementedError

    def _indices_of_rank(self) -> Iterator[int]:
        for epoch in itertools.count():
            for number, batch in enumerate(self.batches_of_pass(epoch)):
                if number % self.world_size == self.rank:
                    yield from (epoch * self.size + index for index in batch)
