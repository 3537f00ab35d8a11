"""What the three methods share: reading named views from a batch, and building the MAE parts at a
size preset."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from maekit.methods.mae import encoder_name_for
from maekit.nn.patchify import as_pair
from maekit.registry import build

__all__ = ["named_views", "vit_encoder", "grid_of"]


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


def vit_encoder(size: str | None, encoder_name: str | None, img_size: Any, patch_size: int | None, in_chans: int,
                overrides: dict[str, Any] | None, method: str) -> Any:
    """A ``vit_encoder`` at a size preset (or a timm name) with free overrides."""
    name = encoder_name_for(size, encoder_name, method)
    return build("encoder", dict(type="vit_encoder", model_name=name, img_size=img_size, patch_size=patch_size,
                                 in_chans=in_chans, **(overrides or {})))


def grid_of(encoder: Any, img_size: Any) -> tuple[int, int]:
    """The token grid of ``img_size`` at the encoder's patch size."""
    p, q = encoder.patch_size
    height, width = as_pair(img_size, "img_size")
    return height // p, width // q
