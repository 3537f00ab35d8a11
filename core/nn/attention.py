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

from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Attention", "CrossAttention", "CrossAttentionBlock", "attend", "explicit_attention", "attention_weights", "runs_attention_in_float32"]


def runs_attention_in_float32(q: torch.Tensor) -> bool:
    """True where :func:`attend` up-casts: a low-precision query on the CPU under CPU autocast."""
    return (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)
            and torch.is_autocast_enabled("cpu"))


_explicit_attention = False


@contextmanager
def explicit_attention(model: nn.Module | None = None) -> Iterator[None]:
    """Within: :func:`attend` (and the timm attention layers of ``model``) write ``softmax(q kᵀ / √d) v``
    out instead of calling the fused kernel. For passes under ``torch.func.vmap`` (test-time training adapts many
    samples' weights at once): the fused CPU backward has no batching rule there and falls back to a
    slow per-sample loop. Same computation, rounding apart."""
    global _explicit_attention
    timm_modules = [m for m in (model.modules() if model is not None else ()) if getattr(m, "fused_attn", None) is True]
    previous, _explicit_attention = _explicit_attention, True
    for module in timm_modules:
        setattr(module, "fused_attn", False)  # noqa: B010 (a plain attribute of timm's Attention, not a submodule)
    try:
        yield
    finally:
        _explicit_attention = previous
        for module in timm_modules:
            setattr(module, "fused_attn", True)  # noqa: B010


def _written_out(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor],
                 dropout_p: float, is_causal: bool) -> torch.Tensor:
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if is_causal:
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    weights = F.dropout(scores.softmax(dim=-1), dropout_p) if dropout_p else scores.softmax(dim=-1)
    return weights @ v


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
           dropout_p: float = 0.0, is_causal: bool = False) -> torch.Tensor:
    """``softmax(q kᵀ / √d + mask) v`` by PyTorch's fused kernel (B×heads×N×d layout); in float32
    under CPU autocast (see the module docstring), returned in the inputs' dtype; written out
    within :func:`explicit_attention`."""
    if _explicit_attention:
        return _written_out(q, k, v, attn_mask, dropout_p, is_causal)
    if not runs_attention_in_float32(q):
        if attn_mask is not None and attn_mask.is_floating_point() and attn_mask.dtype != q.dtype:
            # an additive bias kept in float32 (BEiT's relative position table) beside bf16 q/k/v under
            # GPU autocast: the fused kernels want one dtype (some refuse, one misreads it silently)
            attn_mask = attn_mask.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)
    with torch.autocast("cpu", enabled=False):
        mask = attn_mask.float() if attn_mask is not None and attn_mask.is_floating_point() else attn_mask
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout_p,
                                             is_causal=is_causal)
    return out.to(q.dtype)


class Attention(nn.Module):
    """Multi-head self-attention attending through :func:`attend`, with timm's parameter names
    (``qkv``, ``proj``) and q/k/v layout, so timm and reference checkpoints load as they are. The
    inner width is heads × ``head_dim`` (default ``dim // num_heads``; MAE3D uses 8 × 64 inside a
    1024-wide model). Written here rather than subclassed from timm: timm's ``Attention`` gained
    attributes and options across the 1.0 releases maekit supports."""

    def __init__(self, dim: int, num_heads: int, head_dim: int | None = None, qkv_bias: bool | str = True) -> None:
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"width {dim} must be divisible by num_heads {num_heads} (or give head_dim)")
            head_dim = dim // num_heads
        if qkv_bias not in (True, False, "qv"):
            raise ValueError(f"qkv_bias must be True, False or 'qv' (query and value biases, no key bias), got {qkv_bias!r}")
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias is True)
        # BEiT / VideoMAE: the key bias is fixed at zero (softmax ignores it), the others are
        # parameters named as in their checkpoints (attn.q_bias, attn.v_bias)
        self.q_bias = nn.Parameter(torch.zeros(inner)) if qkv_bias == "qv" else None
        self.v_bias = nn.Parameter(torch.zeros(inner)) if qkv_bias == "qv" else None
        self.proj = nn.Linear(inner, dim)

    def qkv_bias(self) -> torch.Tensor | None:
        """The bias of the fused q/k/v projection: its own, or [q_bias, 0, v_bias]."""
        if self.q_bias is None or self.v_bias is None:
            return self.qkv.bias
        return torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """q, k, v stacked as 3×B×heads×N×head_dim."""
        batch, length, _ = x.shape
        qkv = F.linear(x, self.qkv.weight, self.qkv_bias())
        return qkv.reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.project_qkv(x)
        x = attend(q, k, v, attn_mask, is_causal=is_causal)  # scale head_dim ** -0.5, as timm and the references
        return self.proj(x.transpose(1, 2).reshape(batch, length, -1))


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B×N×dim) to a separate context (B×M×context_dim): ``query``
    from the queries, ``key_value`` from the context, ``proj`` back to ``dim``; inner width heads ×
    ``head_dim`` (default ``dim // num_heads``)."""

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, head_dim: int | None = None,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"width {dim} must be divisible by num_heads {num_heads} (or give head_dim)")
            head_dim = dim // num_heads
        inner = num_heads * head_dim
        self.num_heads, self.head_dim = num_heads, head_dim
        self.query = nn.Linear(dim, inner, bias=qkv_bias)
        self.key_value = nn.Linear(dim if context_dim is None else context_dim, 2 * inner, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``attn_mask`` (B×1×N×M or N×M; bool True = may attend, or additive) limits which context
        tokens each query sees (SAIM's query stream: strictly earlier tokens only)."""
        batch, length, _ = queries.shape
        q = self.query(queries).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.key_value(context).view(batch, context.shape[1], 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = attend(q, k, v, attn_mask)
        return self.proj(out.transpose(1, 2).reshape(batch, length, -1))


class CrossAttentionBlock(nn.Module):
    """A transformer block that also reads a context: by default pre-norm self-attention, then
    cross-attention to the LayerNorm'ed context, then the MLP, each residual (BootMAE's
    ``Decode_Block``). LayerNorm eps 1e-6; timm's ``Mlp``.

    ``order`` arranges the sub-layers ("self", "cross", "mlp"; leave "self" out for a block with
    none, SiamMAE's cross-only ablation): SiamMAE's decoder is ("cross", "self", "mlp").
    ``norm_first=False`` makes it post-norm, ``x = norm(x + sublayer(x))`` with the context used
    as given (PyTorch's ``TransformerDecoderLayer``, which CropMAE's SiamMAE block is, in the
    order ("cross", "mlp", "self")). ``shared_norm=True`` normalises the context with the queries'
    own LayerNorm (SAIM's query stream: one ``norm1`` for q, k and v).
    """

    SUBLAYERS = ("self", "cross", "mlp")

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, mlp_ratio: float = 4.0,
                 head_dim: int | None = None, norm_eps: float = 1e-6, order: tuple[str, ...] = ("self", "cross", "mlp"),
                 norm_first: bool = True, shared_norm: bool = False) -> None:
        super().__init__()
        from timm.layers import Mlp

        order = tuple(order)
        if len(set(order)) != len(order) or not set(order) <= set(self.SUBLAYERS) or not {"cross", "mlp"} <= set(order):
            raise ValueError(f"block order must name 'cross', 'mlp' and optionally 'self', each once, got {order!r}")
        self.order, self.norm_first = order, norm_first
        context_dim = dim if context_dim is None else context_dim
        if "self" in order:
            self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
            self.attn = Attention(dim, num_heads, head_dim)
        self.norm_query = nn.LayerNorm(dim, eps=norm_eps)
        if shared_norm and (context_dim != dim or not norm_first):
            raise ValueError("shared_norm normalises the context with the queries' LayerNorm: it needs a pre-norm "
                             "block whose context has the queries' width")
        self.shared_norm = shared_norm
        self.norm_context = nn.LayerNorm(context_dim, eps=norm_eps) if norm_first and not shared_norm else nn.Identity()
        self.cross_attn = CrossAttention(dim, num_heads, context_dim, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def sublayer(self, name: str, x: torch.Tensor, context: torch.Tensor,
                 attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if name == "self":
            return self.attn(x)
        if name == "mlp":
            return self.mlp(x)
        context = self.norm_query(context) if self.shared_norm else self.norm_context(context)
        return self.cross_attn(x, context, attn_mask)

    def norm_of(self, name: str) -> nn.Module:
        return self.norm1 if name == "self" else self.norm_query if name == "cross" else self.norm2

    def forward(self, x: torch.Tensor, context: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``attn_mask`` applies to the cross-attention (see :meth:`CrossAttention.forward`)."""
        for name in self.order:
            norm = self.norm_of(name)
            x = (x + self.sublayer(name, norm(x), context, attn_mask) if self.norm_first
                 else norm(x + self.sublayer(name, x, context, attn_mask)))
        return x


def attention_weights(attn: Any, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The softmax weights B×heads×N×N that a self-attention module with timm's layout (this
    module's :class:`Attention` or timm's own, with its optional q/k norms) applies to ``x``, in
    float32: what attention-guided masking and attention pictures read. A module with an additive
    bias of its own (``own_bias()``, heads × N × N) has it added, as its forward does."""
    batch, length, _ = x.shape
    if hasattr(attn, "project_qkv"):
        q, k, _ = attn.project_qkv(x)
    else:
        q, k, _ = attn.qkv(x).reshape(batch, length, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = getattr(attn, "q_norm", nn.Identity())(q), getattr(attn, "k_norm", nn.Identity())(k)
    scores = (q.float() @ k.float().transpose(-2, -1)) * attn.head_dim ** -0.5
    own_bias = getattr(attn, "own_bias", None)
    if callable(own_bias):  # an attention with a bias of its own (BEiT's per-block relative table)
        scores = scores + own_bias().float()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask.float()
    return scores.softmax(dim=-1)
