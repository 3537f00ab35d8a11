"""The vocabulary every component speaks: :class:`Tokens`, :class:`Mask` and :class:`ForwardPass`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch

from maekit.ops import gather

__all__ = ["Tokens", "Mask", "ForwardPass", "Prediction"]

#: What a decoder predicts and a target holds: one tensor B×N×Dt, or named parts (a dict of
#: tensors: one per output of a multi-modal decoder, or per term of a composite target).
Prediction = Union[torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class Tokens:
    """A batch of tokens: ``values`` B×N×D, ``coords`` B×N×k, and shared ``meta``.

    ``values`` are the raw per-token inputs (e.g. patch pixels in (p, q, c) order), not embeddings:
    targets are computed from them and encoders embed them. ``coords`` place each token (grid
    row/column for images, 3-D centres for points, (t, joint) for skeletons). ``meta`` holds facts
    shared by the batch (grid size, patch size, ...).
    """

    values: torch.Tensor
    coords: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.dim() != 3 or self.coords.dim() != 3 or self.values.shape[:2] != self.coords.shape[:2]:
            raise ValueError(
                f"Tokens expect values B×N×D and coords B×N×k with the same B, N; "
                f"got values {tuple(self.values.shape)} and coords {tuple(self.coords.shape)}")

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.values.shape[1]

    def take(self, ids: torch.Tensor) -> "Tokens":
        """The tokens at ``ids`` (B×K), in that order; meta is shared."""
        return replace(self, values=gather(self.values, ids), coords=gather(self.coords, ids))


@dataclass
class Mask:
    """Which tokens an encoder sees, in the reference MAE's convention.

    ``ids_keep`` (B×K) lists the visible tokens, ``ids_restore`` (B×N) undoes the shuffle that put
    them first, and ``masked`` (B×N) is 1 for removed tokens and 0 for kept ones, in the original
    token order.
    """

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    masked: torch.Tensor
    #: True when rows remove different numbers of tokens (BEiT's and MaskFeat's block maskers):
    #: only an encoder that sees every token (mask tokens inside it) can take such a mask;
    #: ``ids_keep`` then lists each row's first ``min`` visible tokens only.
    variable_count: bool = False
    #: Each token's place in a generation order (B×N; smaller = earlier), for methods that predict
    #: tokens in an order instead of hiding some (SAIM's random order); None for a plain mask.
    order: torch.Tensor | None = None
    #: Removed tokens that are also left out of the rest of the pass (AMT's "thrown" tokens; B×N
    #: bool, a subset of ``masked`` with the same count in every row): the decoder gives them no
    #: position and no loss counts them. None: nothing is thrown.
    thrown: torch.Tensor | None = None
    #: Per-token loss weights (B×N) multiplying each predicted token's term in a weighted mean;
    #: None: every predicted token counts 1.
    weights: torch.Tensor | None = None

    @property
    def num_visible(self) -> int:
        return self.ids_keep.shape[1]

    @property
    def predicted(self) -> torch.Tensor:
        """B×N, 1 for the tokens a loss counts: removed and not thrown (``masked`` when nothing is thrown)."""
        if self.thrown is None:
            return self.masked
        return self.masked * (~self.thrown).to(self.masked.dtype)

    def kept_positions(self) -> torch.Tensor | None:
        """The ids (B×(N − T), token order) of every token that is not thrown, or None when none is."""
        if self.thrown is None:
            return None
        counts = self.thrown.sum(dim=1)
        if (counts != counts[0]).any():
            raise ValueError(f"every row must throw the same number of tokens, got {counts.tolist()}")
        order = torch.argsort(self.thrown.to(torch.uint8), dim=1, stable=True)
        return order[:, : self.thrown.shape[1] - int(counts[0])]

    @classmethod
    def from_masked(cls, masked: torch.Tensor) -> "Mask":
        """The mask of a pattern ``masked`` (B×N, 1 = removed); visible tokens first in token order,
        then removed ones in token order. Rows may remove different counts (``variable_count``)."""
        masked = masked.bool()
        ids_shuffle = torch.argsort(masked.to(torch.uint8), dim=1, stable=True)
        kept = (~masked).sum(dim=1)
        mask = cls.from_order(ids_shuffle, int(kept.min()))
        mask.masked = masked.to(mask.masked.dtype)
        mask.variable_count = bool((kept != kept[0]).any())
        return mask

    @classmethod
    def from_order(cls, ids_shuffle: torch.Tensor, num_keep: int) -> "Mask":
        """Keep the first ``num_keep`` tokens of ``ids_shuffle`` (B×N), as the reference does."""
        batch, length = ids_shuffle.shape
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        masked = torch.ones(batch, length, device=ids_shuffle.device)
        masked[:, :num_keep] = 0
        masked = torch.gather(masked, 1, ids_restore)
        return cls(ids_keep=ids_shuffle[:, :num_keep], ids_restore=ids_restore, masked=masked)

    @classmethod
    def keep_all(cls, batch: int, length: int, device: torch.device | str | None = None) -> "Mask":
        ids = torch.arange(length, device=device).expand(batch, length)
        return cls.from_order(ids, length)


@dataclass
class ForwardPass:
    """Everything one pass of a :class:`~maekit.model.MaskedAutoencoder` computed, step by step.

    Returned by ``run_steps`` and consumed by the loss, ``auxiliary_losses``, pictures and
    evaluation, so nothing is tokenized twice. ``extras`` holds what a method adds to the pass (a
    corrupted input, a teacher's features, a second view...) under names it documents.
    """

    batch: Any
    tokens: Tokens
    target: Prediction
    mask: Mask
    latents: torch.Tensor
    pred: Prediction
    #: encoder states the method asked for (``MaskedAutoencoder.encoder_taps``), by block index
    taps: dict[int, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
