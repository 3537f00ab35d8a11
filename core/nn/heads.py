"""Classifier heads on an encoder's output tokens (B × (P + N) × D), for probing a frozen encoder."""
from __future__ import annotations

import torch
from torch import nn

from maekit.nn.encoder import make_blocks
from maekit.nn.pos_embed import sincos_2d_table
from maekit.ops import init_mae_weights

__all__ = ["ViTProbeHead", "LinearProbeHead"]


class ViTProbeHead(nn.Module):
    """TTT-MAE's "ViT probing" head: every encoder token (cls + patches) → Linear(in_dim → width) +
    a fixed 2-D sin-cos table (zero cls row) → ``depth`` transformer blocks → LayerNorm → Linear to
    ``num_classes``, read at the cls position. TTT-MAE's ImageNet head: width 768, depth 12, 12
    heads on a ViT-L (512, 8, 16 on a ViT-S)."""

    def __init__(self, in_dim: int, grid_size: tuple[int, int], num_classes: int, width: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, num_prefix_tokens: int = 1) -> None:
        super().__init__()
        if num_prefix_tokens != 1:
            raise ValueError(f"the ViT probe head reads the cls token; an encoder with {num_prefix_tokens} prefix tokens "
                             f"does not fit it (use the linear probe head on mean-pooled tokens)")
        self.grid_size: tuple[int, int] = (int(grid_size[0]), int(grid_size[1]))
        self.embed = nn.Linear(in_dim, width)
        self.register_buffer("pos_embed", sincos_2d_table(self.grid_size, width, 1), persistent=False)
        self.blocks = make_blocks(width, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes)
        self.apply(init_mae_weights)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        expected = 1 + self.grid_size[0] * self.grid_size[1]
        if tokens.shape[1] != expected:
            raise ValueError(f"the ViT probe head reads cls + {expected - 1} patch tokens (grid {self.grid_size}); "
                             f"got {tokens.shape[1]} tokens (a masked pass? it needs the whole image)")
        x = self.blocks(self.embed(tokens) + self.pos_embed)
        return self.head(self.norm(x)[:, 0])


class LinearProbeHead(nn.Module):
    """MAE's linear probe as a module: BatchNorm without affine (eps 1e-6) + Linear on the cls token
    (``pool="cls"``) or the mean of the patch tokens (``pool="mean"``)."""

    def __init__(self, in_dim: int, num_classes: int, pool: str = "cls", num_prefix_tokens: int = 1) -> None:
        super().__init__()
        if pool not in ("cls", "mean") or (pool == "cls" and num_prefix_tokens < 1):
            raise ValueError(f"pool must be 'cls' (an encoder with a cls token) or 'mean', got {pool!r}")
        self.pool, self.num_prefix_tokens = pool, num_prefix_tokens
        self.norm = nn.BatchNorm1d(in_dim, affine=False, eps=1e-6)
        self.head = nn.Linear(in_dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)  # MAE's main_linprobe
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled = tokens[:, 0] if self.pool == "cls" else tokens[:, self.num_prefix_tokens:].mean(dim=1)
        return self.head(self.norm(pooled))
