"""Several datasets trained on together, each with its own transform: OmniMAE's images and
videos under one model (with ``data.sampler="one_source_per_batch"``, every batch from one)."""
from __future__ import annotations

from typing import Any, Sequence

from torch.utils.data import Dataset

from maekit.data.views import transform_naming_source

__all__ = ["ConcatSources"]


class ConcatSources(Dataset):
    """``sources``: a list of ``{"dataset": cfg, "transform": cfg, "repeat_factor": 1.0, "name": str}``;
    sample i of source s is item ``offset_s + i``. Each source's transform is applied here (the
    training view's own transform must then be None), under the training view's per-sample seed."""

    def __init__(self, sources: Sequence[dict[str, Any]]) -> None:
        from maekit.registry import build

        if not sources:
            raise ValueError("concat_sources needs at least one source")
        self.datasets, self.transforms, self.repeat_factors, self.source_names = [], [], [], []
        self.source_offsets: list[int] = []
        total = 0
        for number, spec in enumerate(sources):
            unknown = sorted(set(spec) - {"dataset", "transform", "repeat_factor", "name"})
            if unknown or "dataset" not in spec:
                raise ValueError(f"concat_sources source {number}: expected keys dataset, transform, repeat_factor, "
                                 f"name; got {sorted(spec)}")
            dataset = build("dataset", spec["dataset"])
            transform = spec.get("transform")
            self.datasets.append(dataset)
            self.transforms.append(build("transform", transform) if isinstance(transform, dict) else transform)
            self.repeat_factors.append(float(spec.get("repeat_factor", 1.0)))
            self.source_names.append(str(spec.get("name", number)))
            self.source_offsets.append(total)
            total += len(dataset)
        self.total = total

    def __len__(self) -> int:
        return self.total

    @property
    def clips_per_sample(self) -> list[int]:
        """How many inputs one sample of each source becomes (its transform's ``repeats``, e.g.
        OmniMAE's 4 augmented clips per decoded video)."""
        return [int(getattr(transform, "repeats", 1) or 1) for transform in self.transforms]

    def locate(self, index: int) -> tuple[int, int]:
        """(source, index within it) of item ``index``."""
        for source in reversed(range(len(self.datasets))):
            if index >= self.source_offsets[source]:
                return source, index - self.source_offsets[source]
        raise IndexError(index)

    def source_name(self, index: int) -> str:
        source, position = self.locate(index)
        dataset = self.datasets[source]
        inner = dataset.source_name(position) if hasattr(dataset, "source_name") else f"sample {position}"
        return f"source {self.source_names[source]}: {inner}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        source, position = self.locate(index)
        sample = dict(self.datasets[source][position])
        if self.transforms[source] is not None:
            sample["inputs"] = transform_naming_source(self.transforms[source], sample["inputs"],
                                                       self.datasets[source], position)
        sample["source"] = source
        return sample
