"""mmengine's iteration loop over a streamed dataset, resuming at the shard cursor.

mmengine's ``IterBasedTrainLoop`` resumes by drawing and discarding as many batches as were
trained — at LAION scale hours of reading. :class:`StreamTrainLoop` instead keeps each reader's
last consumed position (:mod:`maekit.data.streaming`) in the message hub, which every checkpoint
carries, and a resumed run starts each reader at its next sample.
"""
from __future__ import annotations

from typing import Any, Sequence

from mmengine.dist import all_gather_object, get_world_size
from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop

from maekit.data.streaming import StreamedView

__all__ = ["StreamTrainLoop", "CURSOR_KEY"]

CURSOR_KEY = "stream_cursor"


class _SkipReplay:
    """An iterator whose first ``count`` items are ``None`` without reading: mmengine's ``run``
    advances the iterator once per trained iteration on resume, which a stream does by cursor."""

    def __init__(self, iterator: Any, count: int) -> None:
        self.iterator, self.count = iterator, count

    def __iter__(self) -> "_SkipReplay":
        return self

    def __next__(self) -> Any:
        if self.count > 0:
            self.count -= 1
            return None
        return next(self.iterator)


@LOOPS.register_module(name="MaekitStreamTrainLoop")
class StreamTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` over a :class:`~maekit.data.streaming.StreamedView`: every batch's
    last ``cursor`` row is its reader's position. Before a checkpoint is written, every rank's
    positions are gathered into the message hub (``stream_cursor``: the layout and one [reader,
    pass, slot, next offset] per reader), which the checkpoint carries
    (:class:`maekit.engine.hooks.SafeCheckpointHook` calls :meth:`gather_cursors` on every rank)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # mmengine made an iterator (and started its workers) before any resume could set the
        # cursor: shut it down now; run() makes the one that reads from the cursor
        self.dataloader_iterator = None

    def run(self) -> Any:
        view = self.dataloader.dataset
        if not isinstance(view, StreamedView):
            raise TypeError(f"MaekitStreamTrainLoop streams a StreamedView, not {type(view).__name__}")
        self.workers = max(1, int(self.dataloader.num_workers))
        view.check_readers(self.workers)
        self.cursors: dict[int, list[int]] = {}
        saved = self.runner.message_hub.get_info(CURSOR_KEY)
        if self._iter > 0:
            if saved is None:
                raise ValueError(f"cannot resume a streamed run from a checkpoint without a stream cursor (iteration "
                                 f"{self._iter}, written by a map-style run?): start afresh, or resume with its dataset")
            # this rank's readers only: the others' positions come from their own ranks at each save
            self.cursors = {reader: cursor for reader, cursor in self._restore(saved, view).items()
                            if reader // self.workers == view.rank}
        view.resume_from = {reader: (pass_, slot, offset) for reader, (pass_, slot, offset) in self.cursors.items()}
        view.worker_shift = self._iter % self.workers
        # the stream never ends, so the loader's own iterator serves (no restart at an epoch's end)
        loader_iterator = iter(self.dataloader)
        self.dataloader_iterator = _SkipReplay(loader_iterator, self._iter)
        try:
            return super().run()
        finally:
            # stop the workers now: left to the garbage collector (the runner's reference cycles),
            # their queues may be finalised first and each worker is waited on for 5 s, then killed
            shutdown = getattr(loader_iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

    def layout(self, view: StreamedView) -> list[int]:
        """What a cursor is valid for: processes, workers per process, shard count, seed, shuffle."""
        return [get_world_size(), self.workers, len(view.dataset.paths), int(view.seed), int(view.dataset.shuffle)]

    def _restore(self, saved: dict, view: StreamedView) -> dict[int, list[int]]:
        layout = list(saved.get("layout", []))
        if layout != self.layout(view):
            world, workers, shards, seed, shuffle = layout if len(layout) == 5 else ["?"] * 5
            now = self.layout(view)
            raise ValueError(f"cannot resume this streamed run at its cursor: it was written by {world} process(es) × "
                             f"{workers} loader worker(s) over {shards} shards with seed {seed} and shuffle={shuffle}, "
                             f"this run has {now[0]} × {now[1]} over {now[2]} shards with seed {now[3]} and "
                             f"shuffle={now[4]}; resume with the same processes, data.num_workers, shards, seed and "
                             f"shuffle")
        return {int(row[0]): [int(v) for v in row[1:]] for row in saved["cursors"]}

    def run_iter(self, data_batch: Sequence[dict] | dict) -> None:
        batch = dict(data_batch)  # type: ignore[arg-type]
        reader, pass_, slot, offset = batch.pop("cursor")[-1].tolist()
        self.cursors[int(reader)] = [pass_, slot, offset + 1]  # recorded before the step its checkpoint follows
        super().run_iter(batch)

    def gather_cursors(self) -> None:
        """Every rank's reader positions into the message hub (a collective: call on every rank)."""
        gathered = all_gather_object(self.cursors) if get_world_size() > 1 else [self.cursors]
        merged = {reader: cursor for cursors in gathered for reader, cursor in cursors.items()}
        self.runner.message_hub.update_info(CURSOR_KEY, {
            "layout": self.layout(self.dataloader.dataset),
            "cursors": [[reader, *cursor] for reader, cursor in sorted(merged.items())]})
