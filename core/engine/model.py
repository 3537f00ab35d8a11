"""The adapter between a maekit method and mmengine's Runner."""
from __future__ import annotations

from typing import Any

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from maekit.data.views import mix_seed
from maekit.registry import build

__all__ = ["RunnerModel", "SampleNoise"]


class SampleNoise:
    """Masking noise seeded per sample by (seed, virtual index): the same sample at the same
    position of the run gets the same mask whatever the process count or a resume in between."""

    def __init__(self, seed: int, indices: torch.Tensor) -> None:
        self.seed, self.indices = seed, indices.tolist()

    def __call__(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        batch, *rest = shape
        if not self.indices or batch % len(self.indices):
            raise ValueError(f"noise for {len(self.indices)} samples asked for a batch of {batch}")
        # a sample may carry several views (repeated augmentation: B·R rows, sample-major); view 0
        # draws what a single view would
        views = batch // len(self.indices)
        rows = []
        for index in self.indices:
            for view in range(views):
                parts = (self.seed, index, 1) if view == 0 else (self.seed, index, 1, view)
                generator = torch.Generator().manual_seed(mix_seed(*parts))
                rows.append(torch.rand(rest, generator=generator))
        return torch.stack(rows).to(device)


@MODELS.register_module(name="MaekitRunnerModel")
class RunnerModel(BaseModel):
    """Wraps a method (``MaskedAutoencoder`` or any module returning a loss dict) for mmengine.

    ``forward(inputs, label, index, mode="loss", **fields)`` calls the method on the batch mapping
    ``{"inputs", "label", "index", **fields}`` (fields: whatever else the dataset's samples carry,
    e.g. a caption's token ids) and returns its losses, with masking noise
    from :class:`SampleNoise` when the batch carries virtual indices. Other randomness in the step
    (dropout, drop-path) is reseeded from (seed, iteration, rank): it survives a resume, and ranks
    draw independently (so with drop-path a DDP run is not the 1-process run, only equivalent).
    ``compile`` (True or ``torch.compile`` options) compiles the method's forward, opt-in.
    """

    def __init__(self, model: dict | torch.nn.Module, seed: int = 0, compile: bool | dict = False) -> None:
        super().__init__()
        self.model = build("model", model)
        self.seed = seed
        if compile:
            # in place (nn.Module.compile): state-dict keys stay those of the uncompiled method
            self.model.compile(**(compile if isinstance(compile, dict) else {}))

    def forward(self, inputs: torch.Tensor, label: Any = None, index: torch.Tensor | None = None,
                mode: str = "loss", **fields: Any) -> Any:
        if mode == "loss":
            from mmengine.dist import get_rank
            from mmengine.logging import MessageHub

            iteration = MessageHub.get_current_instance().get_info("iter", 0)
            torch.manual_seed(mix_seed(self.seed, iteration, get_rank(), 2))
            noise = SampleNoise(self.seed, index) if index is not None else None
            return self.model({"inputs": inputs, "label": label, "index": index, **fields}, noise=noise)
        if mode in ("tensor", "predict"):
            return self.model.encode({"inputs": inputs, **fields})
        raise ValueError(f"unknown forward mode {mode!r}; expected 'loss', 'tensor' or 'predict'")

    def parse_losses(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The method's ``"loss"`` is the total (mmengine would sum every key containing 'loss');
        every term is logged under its own name."""
        if "loss" not in losses:
            raise KeyError(f"the method returned {sorted(losses)}; a 'loss' entry is required")
        log_vars = {"loss": losses["loss"].detach()}
        log_vars.update({k: v.detach() for k, v in losses.items() if k != "loss"})
        return losses["loss"], log_vars
