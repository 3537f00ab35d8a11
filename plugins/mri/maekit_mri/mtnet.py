"""MT-Net (Li et al., SLMT-Net fine-tuning): MR contrast synthesis (e.g. T1 → T2) from a
pre-trained Edge-MAE encoder. Reference: lyhkevin/MT-Net (model/MTNet.py, model/DSF.py).

The encoder runs on the *unmasked* source slice; its states at ``skip_layers`` (0: the patch
embedding, k: after block k) feed two branches — the native token grid (coarse) and a 2× upsampled
copy (fine) — fused at every skip by
Dual-scale Selective Fusion into a decoder running on the fine grid; a Linear per fine token folds
back to the image, sigmoid. Loss: ``pixel_weight · L1(pred, target)`` + the feature-consistency L1
between a frozen copy of the pre-trained encoder's hidden states of the prediction and of the target.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.encoder import make_blocks
from maekit.nn.patchify import unpatchify
from maekit.ops import init_mae_weights

__all__ = ["DualScaleSelectiveFusion", "MTNet", "mtnet"]


class DualScaleSelectiveFusion(nn.Module):
    """DSF: the coarse branch upsampled by a depthwise 2× transposed convolution; each branch gated
    per position by ``sigmoid(conv1x1([branch, decoder feature]))``; the two mixed with per-channel
    softmax weights computed from the global average pool of their sum."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2, groups=dim)
        self.gate_fine = nn.Conv2d(2 * dim, 1, kernel_size=1)
        self.gate_coarse = nn.Conv2d(2 * dim, 1, kernel_size=1)
        self.select = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 2 * dim))

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        coarse = self.upsample(coarse)
        fine = fine * torch.sigmoid(self.gate_fine(torch.cat([fine, decoder], dim=1)))
        coarse = coarse * torch.sigmoid(self.gate_coarse(torch.cat([coarse, decoder], dim=1)))
        weights = self.select((fine + coarse).mean(dim=(2, 3))).view(-1, 2, fine.shape[1]).softmax(dim=1)
        return weights[:, 0, :, None, None] * fine + weights[:, 1, :, None, None] * coarse


class MTNet(nn.Module):
    """MT-Net on a core ViT encoder (Edge-MAE's). ``batch``: ``{"inputs": source B×1×H×W,
    "target": target B×1×H×W}`` in [0, 1]; :meth:`synthesize` maps sources to targets."""

    def __init__(self, patchifier: nn.Module, encoder: nn.Module, grid_size: tuple[int, int], patch_size: int,
                 skip_layers: Sequence[int], dim: int = 128, num_heads: int = 8, pixel_weight: float = 10000.0,
                 consistency_layers: int = 12, consistency_weight: float = 1.0) -> None:
        super().__init__()
        if patch_size % 2:
            raise ValueError(f"MT-Net's fine branch halves the patch: patch_size must be even, got {patch_size}")
        depth = len(encoder.blocks)
        if not skip_layers or any(not 0 <= layer <= depth for layer in skip_layers):
            raise ValueError(f"skip_layers must be in 0..{depth} (0: the patch embedding, k: after block k), "
                             f"got {list(skip_layers)}")
        self.patchifier, self.encoder = patchifier, encoder
        self.grid_size, self.patch_size, self.skip_layers = tuple(grid_size), patch_size, tuple(skip_layers)
        self.pixel_weight, self.consistency_weight = pixel_weight, consistency_weight
        self.consistency_layers = min(consistency_layers, depth)
        # a frozen copy of the pre-trained encoder judges feature consistency
        self.judge = copy.deepcopy(encoder).requires_grad_(False).eval()
        width = encoder.embed_dim
        # a pre-trained residual stream grows with depth: each skip is layer-normalised before use
        self.skip_norms = nn.ModuleList([nn.LayerNorm(width, eps=1e-6) for _ in self.skip_layers])
        self.project = nn.ModuleList([nn.Conv2d(width, dim, kernel_size=1) for _ in self.skip_layers])
        self.to_fine = nn.ModuleList([nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2, groups=dim)
                                      for _ in self.skip_layers])
        self.coarse_blocks = nn.ModuleList([make_blocks(dim, 1, num_heads) for _ in self.skip_layers])
        self.fine_blocks = nn.ModuleList([make_blocks(dim, 1, num_heads) for _ in self.skip_layers])
        self.fusions = nn.ModuleList([DualScaleSelectiveFusion(dim) for _ in self.skip_layers])
        self.decoder_blocks = nn.ModuleList([make_blocks(dim, 1, num_heads) for _ in self.skip_layers])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, (patch_size // 2) ** 2)
        for module in (self.coarse_blocks, self.fine_blocks, self.decoder_blocks, self.head):
            module.apply(init_mae_weights)

    def train(self, mode: bool = True) -> "MTNet":
        super().train(mode)
        self.judge.eval()  # always: it is a fixed measure
        return self

    @staticmethod
    def _blocks_on_map(blocks: nn.Module, feature: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = feature.shape
        tokens = blocks(feature.flatten(2).transpose(1, 2))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)

    def synthesize(self, source: torch.Tensor) -> torch.Tensor:
        """The synthesised target contrast (B×1×H×W, in (0, 1)) of source slices."""
        tokens = self.patchifier(source)
        grid = tuple(tokens.meta["grid_size"])
        if grid != self.grid_size:
            raise ValueError(f"MT-Net built for a {self.grid_size} token grid (slices of "
                             f"{self.grid_size[0] * self.patch_size} px), got {grid}")
        states = self.encoder.hidden_states(tokens)  # [embedded, block 1, …]
        prefix = getattr(self.encoder, "num_prefix_tokens", 1)
        skips = [norm(states[layer][:, prefix:]).transpose(1, 2).reshape(len(source), -1, *grid)
                 for norm, layer in zip(self.skip_norms, self.skip_layers)]
        decoder = None
        for level in reversed(range(len(skips))):  # deepest skip first
            coarse = self.project[level](skips[level])
            fine = self._blocks_on_map(self.fine_blocks[level], self.to_fine[level](coarse))
            coarse = self._blocks_on_map(self.coarse_blocks[level], coarse)
            decoder = fine if decoder is None else decoder
            decoder = self._blocks_on_map(self.decoder_blocks[level], decoder + self.fusions[level](fine, coarse, decoder))
        fine_grid = (2 * grid[0], 2 * grid[1])
        pixels = self.head(self.norm(decoder.flatten(2).transpose(1, 2)))
        half = self.patch_size // 2
        return torch.sigmoid(unpatchify(pixels, fine_grid, (half, half)))

    def consistency(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Sum over the judge's first ``consistency_layers`` blocks of the L1 between its hidden
        states of the prediction and of the target."""
        predicted = self.judge.hidden_states(self.patchifier(pred))[1: self.consistency_layers + 1]
        with torch.no_grad():
            wanted = self.judge.hidden_states(self.patchifier(target))[1: self.consistency_layers + 1]
        return sum(F.l1_loss(a, b) for a, b in zip(predicted, wanted))

    def forward(self, batch: dict[str, Any], noise: Any = None) -> dict[str, torch.Tensor]:
        if "target" not in batch:
            raise ValueError("MT-Net trains on pairs: the batch needs 'target' slices (dataset mri_paired_slices)")
        pred = self.synthesize(batch["inputs"])
        target = batch["target"].to(pred)
        pixel = F.l1_loss(pred, target)
        consistency = self.consistency(pred, target) if self.consistency_weight else pred.new_zeros(())
        loss = self.pixel_weight * pixel + self.consistency_weight * consistency
        return {"loss": loss, "loss_l1": pixel, "loss_consistency": consistency}


def mtnet(encoder: dict, pretrained: str | None = None, skip_layers: Sequence[int] | None = None, dim: int = 128,
          num_heads: int = 8, pixel_weight: float = 10000.0, consistency_layers: int = 12,
          consistency_weight: float = 1.0) -> MTNet:
    """MT-Net on the encoder of the Edge-MAE config ``encoder`` (a model config, e.g. the
    ``edge_mae`` section of a pre-training config), loaded from ``pretrained`` (a ``maekit train``
    checkpoint of it; None: from scratch). ``skip_layers`` (0 = the patch embedding, k = after block
    k) default: the embedding and every quarter of the depth."""
    from maekit.eval.probe import load_trained_model

    edge = load_trained_model(encoder, pretrained).train()
    depth = len(edge.encoder.blocks)
    layers = list(skip_layers) if skip_layers is not None else sorted({0} | {max(1, depth * k // 4) for k in (1, 2, 3, 4)})
    grid = tuple(edge.decoder.grid_size)
    return MTNet(edge.patchifier, edge.encoder, grid, edge.patchifier.patch_size[0], layers, dim, num_heads,
                 pixel_weight, consistency_layers, consistency_weight)
