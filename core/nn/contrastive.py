"""Contrast between views: projector/predictor MLPs, features gathered across processes, and
InfoNCE with in-batch negatives (gathered under DDP) or a memory bank of negatives.

Under DDP, :class:`InfoNCE` follows MoCo v3 and CMAE: each process scores its own queries against
the keys of every process (gathered, without gradient), the positive of local query ``i`` being
global key ``rank·B + i``. The mean over the processes' queries is then averaged across processes
(a differentiable all-reduce of one number), so every process reports the loss of the global
batch, and each process's gradient is that of its own queries' mean — which DDP's gradient
averaging turns into exactly the global batch's gradient (``tests/test_contrastive.py`` checks
both with two gloo processes).

:class:`PairContrastiveLoss` is the cross-modal kind: a similarity matrix of paired features (text ×
video, audio × video) whose diagonal holds the pairs, with gradients through both sides.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["gather_features", "mean_over_processes", "MLPProjector", "InfoNCE", "symmetric_info_nce", "rank_and_world",
           "pair_contrastive_loss", "PairContrastiveLoss", "PAIR_DIRECTIONS"]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the process count (0, 1 when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over processes, differentiable: its backward hands every process's own
    ``value`` a gradient of 1 in total, so DDP's averaging of parameter gradients is unchanged
    while every process reports the global figure. The value itself when not distributed."""
    _, world = rank_and_world()
    if world == 1:
        return value
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(value) / world


def gather_features(features: torch.Tensor, keep_gradient: bool = True) -> torch.Tensor:
    """Every process's ``features`` concatenated in rank order; this process's own part keeps its
    gradient when ``keep_gradient`` (open_clip's default ``gather_with_grad=False``), the others
    never do. The local tensor when not distributed."""
    import torch.distributed as dist

    rank, world = rank_and_world()
    if world == 1:
        return features if keep_gradient else features.detach()
    gathered = [torch.empty_like(features) for _ in range(world)]
    dist.all_gather(gathered, features.detach().contiguous())
    if keep_gradient:
        gathered[rank] = features
    return torch.cat(gathered)


class MLPProjector(nn.Sequential):
    """Linear → BatchNorm → ReLU, repeated, then a last Linear (and optionally a last BatchNorm):
    mmselfsup's ``NonLinearNeck`` (CMAE's projector and predictor: 2 layers, bias on all but the
    last Linear, no last BN, BN eps 1e-6) and MoCo v3's ``_build_mlp`` (SDMAE: no biases, a last BN
    without affine). ``layers`` counts the Linears. Input B×D (or B×1×D, squeezed)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2, bias: bool = True,
                 last_bias: bool = False, last_bn: bool = False, last_bn_affine: bool = True, bn_eps: float = 1e-5) -> None:
        if layers < 1:
            raise ValueError(f"a projector has at least one layer, got {layers}")
        modules: list[nn.Module] = []
        for i in range(layers):
            last = i == layers - 1
            width_in, width_out = in_dim if i == 0 else hidden_dim, out_dim if last else hidden_dim
            modules.append(nn.Linear(width_in, width_out, bias=last_bias if last else bias))
            if not last:
                modules += [nn.BatchNorm1d(width_out, eps=bn_eps), nn.ReLU(inplace=True)]
            elif last_bn:
                modules.append(nn.BatchNorm1d(width_out, eps=bn_eps, affine=last_bn_affine))
        super().__init__(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and x.shape[1] == 1:
            x = x[:, 0]
        return super().forward(x)


class InfoNCE(nn.Module):
    """One direction of InfoNCE: ``CE(q·kᵀ/τ, positives)`` over unit-normalised queries and keys.

    ``tau``: temperature. ``scale_2tau``: multiply by 2τ (MoCo v3, CMAE, SDMAE). ``gather``:
    "keys" scores local queries against every process's keys and reports the global batch's loss
    (module docstring), "none" against the local keys only (SDMAE's local-batch negatives: each
    process its own loss, as the reference). ``queue``: size of a memory bank of past
    keys used as further negatives (MoCo v2; MACRL): logits = [q·k₊, q·bank], the positive first;
    after each training call the (gathered) keys replace the oldest entries (:meth:`remember`). The bank starts as
    random unit vectors, as MoCo's, and is a buffer: checkpoints carry it.

    Returns ``{"loss": value, "accuracy": share of queries whose positive scores highest}``.
    """

    bank: torch.Tensor
    bank_pointer: torch.Tensor

    def __init__(self, tau: float = 0.07, scale_2tau: bool = False, gather: str = "keys", queue: int = 0,
                 dim: int | None = None) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"InfoNCE temperature tau must be positive, got {tau!r}")
        if gather not in ("keys", "none"):
            raise ValueError(f"InfoNCE gather must be 'keys' or 'none', got {gather!r}")
        if queue < 0 or (queue and not dim):
            raise ValueError(f"an InfoNCE memory bank needs queue >= 0 and the feature dim, got queue={queue}, dim={dim}")
        if queue and gather != "keys":  # every process must store the same keys, or the banks drift apart
            raise ValueError("an InfoNCE memory bank stores every process's keys: use gather='keys' with queue > 0")
        self.tau, self.scale_2tau, self.gather, self.queue = float(tau), bool(scale_2tau), gather, int(queue)
        if queue:
            self.register_buffer("bank", F.normalize(torch.randn(queue, int(dim or 0)), dim=1))
            self.register_buffer("bank_pointer", torch.zeros((), dtype=torch.long))

    def forward(self, query: torch.Tensor, key: torch.Tensor, remember: bool = True) -> dict[str, torch.Tensor]:
        """The loss of ``query`` against ``key``; with a bank, a training call then stores the
        keys (``remember=False`` leaves that to the caller, e.g. after both directions)."""
        if query.dim() != 2 or query.shape != key.shape:
            raise ValueError(f"InfoNCE expects queries and keys of one shape B×D, got {tuple(query.shape)} and {tuple(key.shape)}")
        query = F.normalize(query.float(), dim=1)
        key = F.normalize(key.float(), dim=1).detach()
        if self.queue:
            positives = (query * key).sum(dim=1, keepdim=True)
            # a copy: the bank changes in place when keys are stored, and backward needs it as it was
            logits = torch.cat([positives, query @ self.bank.clone().t()], dim=1) / self.tau
            labels = torch.zeros(len(query), dtype=torch.long, device=query.device)
            if remember:
                self.remember(key)
        else:
            keys = gather_features(key, keep_gradient=False) if self.gather == "keys" else key
            offset = rank_and_world()[0] * len(query) if self.gather == "keys" else 0
            logits = query @ keys.t() / self.tau
            labels = torch.arange(len(query), device=query.device) + offset
        loss = F.cross_entropy(logits, labels)
        if self.scale_2tau:
            loss = loss * (2 * self.tau)
        if self.gather == "keys":  # every process: the global batch's loss (module docstring)
            loss = mean_over_processes(loss)
        accuracy = (logits.argmax(dim=1) == labels).float().mean().detach()
        return {"loss": loss, "accuracy": accuracy}

    @torch.no_grad()
    def remember(self, key: torch.Tensor) -> None:
        """In training, every process's keys (unit-normalised; a bank always gathers them) replace
        the oldest entries of the bank, wrapping around; nothing without a bank or in evaluation."""
        if not self.queue or not self.training:
            return
        keys = gather_features(F.normalize(key.float(), dim=1), keep_gradient=False)[-self.queue:]
        start = int(self.bank_pointer)
        rows = (torch.arange(len(keys), device=keys.device) + start) % self.queue
        self.bank[rows] = keys.to(self.bank.dtype)
        self.bank_pointer.fill_((start + len(keys)) % self.queue)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, scale_2tau={self.scale_2tau}, gather={self.gather!r}, queue={self.queue}"


def symmetric_info_nce(loss: InfoNCE, first: Sequence[torch.Tensor], second: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``loss(q₁, k₂) + loss(q₂, k₁)`` for the (query, key) pairs of two views, ``first`` = (q₁, k₁)
    and ``second`` = (q₂, k₂) (MoCo v3's and SDMAE's symmetric sum); accuracy averaged. With a
    bank, both directions score the same bank, then k₁ and k₂ are stored (in that order), so no
    query meets its own key among the negatives."""
    one = loss(first[0], second[1], remember=False)
    two = loss(second[0], first[1], remember=False)
    loss.remember(first[1])
    loss.remember(second[1])
    return {"loss": one["loss"] + two["loss"], "accuracy": (one["accuracy"] + two["accuracy"]) / 2}


#: How :func:`pair_contrastive_loss` reduces the two softmax directions of a pair matrix: "sum" of
#: the row-wise and column-wise terms (SimVTP's ``NormSoftmaxLoss``), their "mean" (CLIP, FLIP),
#: "rows" only (each row's softmax over columns) or "columns" only (each column's softmax over rows:
#: CAV-MAE's ``log_softmax(dim=0)``).
PAIR_DIRECTIONS = ("sum", "mean", "rows", "columns")


def pair_contrastive_loss(similarity: torch.Tensor, temperature: float | torch.Tensor,
                          directions: str = "mean") -> torch.Tensor:
    """−mean diag log_softmax(S/τ) over rows and/or columns (:data:`PAIR_DIRECTIONS`) of a square
    similarity matrix S whose diagonal holds the pairs; gradients reach both sides (and a learnable
    τ given as a tensor, as CLIP's 1 / logit scale)."""
    if directions not in PAIR_DIRECTIONS:
        raise ValueError(f"pair contrast directions must be one of {', '.join(PAIR_DIRECTIONS)}, got {directions!r}")
    logits = similarity.float() / temperature
    rows = -F.log_softmax(logits, dim=1).diagonal().mean()
    columns = -F.log_softmax(logits, dim=0).diagonal().mean()
    return {"sum": rows + columns, "mean": (rows + columns) / 2, "rows": rows, "columns": columns}[directions]


class PairContrastiveLoss(nn.Module):
    """A core loss (``loss(pred, target, mask)``) on a square similarity matrix ``pred`` (e.g. cosine
    similarities of paired features, pair i on the diagonal): :func:`pair_contrastive_loss` at
    ``temperature`` with ``directions``; in-batch negatives of this process. ``target`` and ``mask``
    are not read. Returns ``{"loss", name, "<name>_accuracy"}`` (the share of rows whose own column
    scores highest)."""

    def __init__(self, temperature: float = 0.07, directions: str = "mean", name: str = "contrast") -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"contrastive temperature must be positive, got {temperature!r}")
        if directions not in PAIR_DIRECTIONS:
            raise ValueError(f"pair contrast directions must be one of {', '.join(PAIR_DIRECTIONS)}, got {directions!r}")
        self.temperature, self.directions, self.name = float(temperature), directions, name

    def forward(self, pred: Any, target: Any = None, mask: Any = None) -> dict[str, torch.Tensor]:
        if pred.dim() != 2 or pred.shape[0] != pred.shape[1]:
            raise ValueError(f"{self.name} reads a square similarity matrix of pairs, got {tuple(pred.shape)}")
        value = pair_contrastive_loss(pred, self.temperature, self.directions)
        accuracy = (pred.detach().argmax(1) == torch.arange(len(pred), device=pred.device)).float().mean()
        return {"loss": value, self.name: value, f"{self.name}_accuracy": accuracy}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, directions={self.directions!r}"
