"""A sampler that hands out virtual indices, so each pass over the data has its own randomness."""
from __future__ import annotations

import itertools
from typing import Any, Iterator

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.registry import DATA_SAMPLERS

__all__ = ["VirtualIndexSampler", "BalancedVirtualIndexSampler", "OneSourceBatchSampler"]


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


@DATA_SAMPLERS.register_module(name="MaekitOneSourceBatchSampler")
class OneSourceBatchSampler:
    """``data.sampler="one_source_per_batch"`` over a ``concat_sources`` dataset: every step's
    batch — on every DDP rank — holds samples of one source (images and clips cannot share a
    batch), as OmniMAE's ``use_one`` strategy. A batch sampler wrapping the run's shuffle sampler
    (for its dataset, seed, rank and world size).

    Each pass shuffles every source, cuts it into global batches (``batch_size`` × world size
    samples, divided by the clips one sample of that source becomes: a source whose transform
    gives 4 augmented clips per video takes 8 videos where images take 32, so every step trains
    on 32 inputs, as the reference divides the video batch by ``num_times``), keeps a
    ``repeat_factor`` share of them, and orders all steps by a seeded permutation of source ids
    that every rank draws alike; rank r takes the r-th part of each global batch. Virtual indices
    ``pass × len + index`` as the shuffle sampler."""

    def __init__(self, sampler: Any, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, int(batch_size)
        source = getattr(sampler.dataset, "dataset", sampler.dataset)  # the training view wraps the dataset
        if getattr(source, "source_offsets", None) is None:
            raise ValueError(f"data.sampler='one_source_per_batch' needs a concat_sources dataset; "
                             f"got {type(source).__name__}")
        self.size = len(source)
        self.offsets, self.repeat_factors = list(source.source_offsets), list(source.repeat_factors)
        self.sizes = [end - start for start, end in zip(self.offsets, self.offsets[1:] + [self.size])]
        self.per_rank = [max(1, self.batch_size // clips) for clips in source.clips_per_sample]
        world = sampler.world_size
        for name, size, per_rank in zip(source.source_names, self.sizes, self.per_rank):
            if size < per_rank * world:
                raise ValueError(f"source {name} has {size} samples, fewer than one batch of {per_rank} × {world} "
                                 f"process(es)")

    def steps_of_pass(self, epoch: int) -> list[list[list[int]]]:
        """The steps of one pass: each a list of one batch (dataset indices) per rank."""
        generator = torch.Generator().manual_seed(int(self.sampler.seed) * 1_000_003 + epoch)
        world = self.sampler.world_size
        steps: list[list[list[int]]] = []
        for offset, size, factor, per_rank in zip(self.offsets, self.sizes, self.repeat_factors, self.per_rank):
            order = (torch.randperm(size, generator=generator) + offset).tolist()
            width = per_rank * world
            for number in range(max(1, int(size // width * factor))):
                chunk = order[number * width:(number + 1) * width]
                steps.append([chunk[r * per_rank:(r + 1) * per_rank] for r in range(world)])
        return [steps[i] for i in torch.randperm(len(steps), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        for epoch in itertools.count():
            for step in self.steps_of_pass(epoch):
                yield [epoch * self.size + index for index in step[self.sampler.rank]]

    def __len__(self) -> int:
        return len(self.steps_of_pass(0))
