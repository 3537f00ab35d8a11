"""What the three methods share: reading named views from a batch."""
from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["named_views"]


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
