"""A training view of WebDataset shards as a stream, resumable at the exact sample.

Readers: every (process, loader worker) pair is one *reader*; ``world × workers`` of them. In pass
``p`` the shards are ordered by a permutation drawn from (seed, p) and reader ``r`` takes every
``readers``-th of them from position ``r``; inside a shard, samples come in a permutation drawn
from (seed, p, shard). So a sample's position is (pass, shard, offset), and everything random
about it — crop, flip, mask — is drawn from a seed that is a function of (seed, pass, shard,
offset), as :class:`~maekit.data.views.AugmentedView` draws from (seed, virtual index).

Each item carries ``cursor`` = (reader, pass, slot of the shard in the reader's list, offset); the
training loop (:class:`maekit.engine.streaming.StreamTrainLoop`) keeps the last consumed one per
reader in the checkpoint, and a resumed run starts every reader at its next sample, reading only
that shard's tar headers — no rescan, no replay of the consumed batches.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

from maekit.data.shards import ShardDataset, shard_order
from maekit.data.views import mix_seed, seeded_view

__all__ = ["StreamedView", "Cursor"]

Cursor = tuple[int, int, int]  # (pass, slot, offset) of a reader's next sample


class StreamedView(IterableDataset):
    """Shards seen through a transform, as an endless stream split by process and loader worker.

    ``rank``/``world_size``: this process's (default: the process group's). The training loop sets
    ``resume_from`` (reader → next :data:`Cursor`) and ``worker_shift`` before iterating."""

    def __init__(self, dataset: ShardDataset | dict, transform: Any = None, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None) -> None:
        from mmengine.dist import get_dist_info

        from maekit.registry import build

        self.dataset = build("dataset", dataset)
        if not isinstance(self.dataset, ShardDataset):
            raise ValueError(f"a streamed view reads a shards dataset, not {type(self.dataset).__name__}")
        self.transform = build("transform", transform) if isinstance(transform, dict) else transform
        self.seed = seed
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        self.resume_from: dict[int, Cursor] = {}
        # DataLoader workers hand out batches in turn; after a resume at iteration i, worker w
        # serves reader (w + i) % workers so batch order continues where it stopped
        self.worker_shift = 0

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def metainfo(self) -> dict[str, Any]:
        return {}

    def check_readers(self, workers: int) -> None:
        """Every reader needs a shard of its own in each pass."""
        readers = self.world_size * max(1, workers)
        if len(self.dataset.paths) < readers:
            raise ValueError(f"{len(self.dataset.paths)} shard(s) for {readers} readers ({self.world_size} process(es) × "
                             f"{max(1, workers)} loader worker(s)): write at least {readers} shards (a smaller "
                             f"--shard-size) or use fewer workers")

    def shards_of(self, reader: int, readers: int, epoch: int) -> list[int]:
        """The shards reader ``reader`` of ``readers`` reads in pass ``epoch``, in order."""
        return shard_order(len(self.dataset.paths), self.seed, epoch, self.dataset.shuffle)[reader::readers]

    def reader(self) -> tuple[int, int]:
        """(this iterator's reader, readers in all)."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + (worker + self.worker_shift) % workers, self.world_size * workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader, readers = self.reader()
        self.check_readers(readers // self.world_size)
        epoch, slot, start = self.resume_from.get(reader, (0, 0, 0))
        while True:
            shards = self.shards_of(reader, readers, epoch)
            whole_pass, served = slot == 0 and start == 0, False
            while slot < len(shards):
                shard = shards[slot]
                order_seed = mix_seed(self.seed, epoch, shard) if self.dataset.shuffle else None
                for offset, key, sample in self.dataset.samples(shard, start, order_seed, finish=False):
                    position = mix_seed(epoch, shard, offset)  # seeds the mask (with the run's seed)
                    where = f"{self.dataset.paths[shard]}:{key}"
                    try:  # the field transforms (a clip's start) and the transform under the sample's seed
                        item = seeded_view(lambda: self.dataset.finish(sample, where),  # noqa: B023
                                           self.transform, mix_seed(self.seed, position), position,
                                           lambda: where)  # noqa: B023  (both called at once)
                    except ValueError as error:  # undecodable or refused by a transform: on_error says
                        self.dataset.refuse(error)
                        continue
                    item["cursor"] = torch.tensor([reader, epoch, slot, offset])
                    served = True
                    yield item
                slot, start = slot + 1, 0
            if whole_pass and not served:  # else this reader would loop forever, serving nothing
                names = ", ".join(self.dataset.paths[shard].name for shard in shards)
                raise ValueError(f"shards {names}: no samples in them (reader {reader} of {readers})")
            epoch, slot = epoch + 1, 0
