"""A dataset seen through one corruption at one severity, for training or testing on corrupted images."""
from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from maekit.data.views import mix_seed
from maekit.registry import build
from maekit_ttt.corruptions import CORRUPTIONS, corrupt

__all__ = ["CorruptedDataset"]


class CorruptedDataset(Dataset):
    """``dataset`` (samples with ``inputs`` C×H×W in [0, 1]) with every image corrupted by
    ``corruption`` at ``severity``; each image's random draws are seeded by (``seed``, its index), so
    the corrupted set is the same on every pass and every machine."""

    modality = "image"

    def __init__(self, dataset: dict[str, Any] | Dataset, corruption: str, severity: int, seed: int = 0,
                 table: str = "auto") -> None:
        if corruption not in CORRUPTIONS:
            raise ValueError(f"corrupted dataset: unknown corruption {corruption!r}; known: {', '.join(CORRUPTIONS)}")
        if severity not in (1, 2, 3, 4, 5):
            raise ValueError(f"corrupted dataset: severity must be 1–5, got {severity!r}")
        self.dataset = build("dataset", dataset) if isinstance(dataset, dict) else dataset
        self.corruption, self.severity, self.seed, self.table = corruption, severity, seed, table
        self.classes = getattr(self.dataset, "classes", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        seed = mix_seed(self.seed, index, self.severity, list(CORRUPTIONS).index(self.corruption))
        sample["inputs"] = corrupt(sample["inputs"], self.corruption, self.severity, seed=seed, table=self.table)
        return sample
