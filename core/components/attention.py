"""Fused attention, with a CPU autocast fix: every transformer block in maekit attends through
:func:`attend`.

PyTorch's CPU kernels for ``scaled_dot_product_attention`` in bfloat16/float16 are slower than its
float32 ones (SDPA alone, forward + backward, 2-6x on a 2-core Ice Lake; a whole block 5-12% faster
with the change, ``benchmarks/attention.py``), and the softmax over bf16 scores is the least
accurate step of a bf16 block. Under CPU autocast the
attention itself therefore runs in float32 — q, k, v up-cast, the output cast back — while the
projections around it stay in the autocast dtype. On GPUs the low-precision flash kernels are the
fast ones and are used as they are.
"""
from __future__ import annotations

from typing import Optional

import torch
from timm.layers import Attention as TimmAttention
from torch.nn import functional as F

__all__ = ["Attention", "attend", "runs_attention_in_float32"]


def runs_attention_in_float32(q: torch.Tensor) -> bool:
    """True where :func:`attend` up-casts: a low-precision query on the CPU under CPU autocast."""
    return (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)
            and torch.is_autocast_enabled("cpu"))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
           dropout_p: float = 0.0, is_causal: bool = False) -> torch.Tensor:
    """``softmax(q kᵀ / √d + mask) v`` by PyTorch's fused kernel (B×heads×N×d layout); in float32
    under CPU autocast (see the module docstring), returned in the inputs' dtype."""
    if not runs_attention_in_float32(q):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)
    with torch.autocast("cpu", enabled=False):
        mask = attn_mask.float() if attn_mask is not None and attn_mask.is_floating_point() else attn_mask
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout_p,
                                             is_causal=is_causal)
    return out.to(q.dtype)


class Attention(TimmAttention):
    """timm's multi-head self-attention (same parameters and state-dict names: qkv, proj), attending
    through :func:`attend`. maekit's blocks use neither timm's gate nor its qk-norm."""

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = attend(q, k, v, attn_mask, self.attn_drop.p if self.training else 0.0, is_causal)
        x = self.norm(x.transpose(1, 2).reshape(batch, length, self.attn_dim))
        return self.proj_drop(self.proj(x))
