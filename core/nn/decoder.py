"""Light transformer decoders with mask tokens: the reference MAE decoder, a coordinate one, and
one whose blocks also read an encoder state (cross-attention)."""
from __future__ import annotations

import torch
from torch import nn

from maekit.nn.attention import CrossAttentionBlock
from maekit.nn.base import Decoder
from maekit.nn.encoder import make_blocks
from maekit.nn.patchify import as_pair
from maekit.nn.pos_embed import resample_grid_table, sincos_2d_table, sincos_embed
from maekit.ops import fill_mask_tokens, gather, init_mae_weights
from maekit.structures import Mask, Tokens

__all__ = ["MAEDecoder", "TransformerDecoder", "CrossAttentionDecoder", "LinearHead"]


class MAEDecoder(Decoder):
    """The reference MAE decoder: Linear to the decoder width, mask tokens appended after the
    visible ones and un-shuffled by ``ids_restore``, fixed 2-D sin-cos positions, timm blocks,
    LayerNorm, Linear to the target width; the prefix (cls) outputs are dropped."""

    def __init__(self, encoder_dim: int, out_dim: int, grid_size: int | tuple[int, int] = 14,
                 embed_dim: int = 512, depth: int = 8, num_heads: int = 16, mlp_ratio: float = 4.0,
                 num_prefix_tokens: int = 1, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.grid_size = as_pair(grid_size, "decoder grid_size")
        self.num_prefix_tokens = num_prefix_tokens
        self.embed = nn.Linear(encoder_dim, embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sincos_2d_table(self.grid_size, embed_dim, num_prefix_tokens),
                                      requires_grad=False)
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, norm_eps)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.pred = nn.Linear(embed_dim, out_dim)
        self.apply(init_mae_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        """(1 or B, P + N, D) positions for prefix + every token."""
        grid = tuple(tokens.meta.get("grid_size", self.grid_size))
        return resample_grid_table(self.pos_embed, self.grid_size, grid, self.num_prefix_tokens)

    def with_mask_tokens(self, latents: torch.Tensor, mask: Mask) -> torch.Tensor:
        """The latents at the decoder's width with a mask token for every removed token, prefix
        first, in token order (B×(P+N)×D), before positions."""
        x = self.embed(latents)
        prefix, visible = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
        return torch.cat([prefix, fill_mask_tokens(visible, mask.ids_restore, self.mask_token)], dim=1)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        return self.forward_with_prefix(latents, mask, tokens)[:, self.num_prefix_tokens:]

    def forward_with_prefix(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        """The prediction at the prefix (cls) positions too: B×(P+N)×out (SDMAE's contrastive head
        reads the decoder's cls position)."""
        x = self.with_mask_tokens(latents, mask)
        x = x + self.position_embedding(tokens).to(x.dtype)
        kept = mask.kept_positions()
        if kept is None:
            return self.pred(self.norm(self.run_blocks(x, tokens)))
        if type(self).run_blocks is not MAEDecoder.run_blocks:
            raise ValueError(f"{type(self).__name__} arranges its blocks by the token grid and cannot drop thrown tokens "
                             f"(a masker with throw_ratio > 0)")
        # thrown tokens (AMT) leave after their positions are added: the blocks never see them,
        # and their rows of the prediction stay zero (no loss counts them)
        kept = torch.cat([torch.arange(self.num_prefix_tokens, device=kept.device).expand(kept.shape[0], -1),
                          kept + self.num_prefix_tokens], dim=1)
        out = self.pred(self.norm(self.run_blocks(gather(x, kept), tokens)))
        return out.new_zeros(out.shape[0], x.shape[1], out.shape[2]).scatter(
            1, kept.unsqueeze(-1).expand(-1, -1, out.shape[2]), out)

    def run_blocks(self, x: torch.Tensor, tokens: Tokens) -> torch.Tensor:
        """The blocks over prefix + every token (B×(P+N)×D). A decoder whose blocks see the token
        grid (Audio-MAE's shifted windows) overrides this."""
        return self.blocks(x)


class TransformerDecoder(MAEDecoder):
    """The MAE decoder for tokens placed by continuous coordinates (points, time, joints): sin-cos
    embedding of ``tokens.coords`` instead of a grid table; prefix tokens get zeros."""

    def __init__(self, encoder_dim: int, out_dim: int, embed_dim: int = 256, depth: int = 4,
                 num_heads: int = 8, mlp_ratio: float = 4.0, num_prefix_tokens: int = 1,
                 norm_eps: float = 1e-6) -> None:
        super().__init__(encoder_dim, out_dim, grid_size=1, embed_dim=embed_dim, depth=depth,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, num_prefix_tokens=num_prefix_tokens,
                         norm_eps=norm_eps)
        del self.pos_embed  # positions come from coordinates

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        dim = self.mask_token.shape[-1]
        positions = sincos_embed(tokens.coords, dim)
        prefix = positions.new_zeros(positions.shape[0], self.num_prefix_tokens, dim)
        return torch.cat([prefix, positions], dim=1)


class CrossAttentionDecoder(MAEDecoder):
    """An MAE decoder whose blocks (:class:`~maekit.nn.attention.CrossAttentionBlock`) also attend
    to an encoder state: ``context`` (B×(P+K)×context_dim, e.g. a block's output over the visible
    tokens, the encoder's tap ``context_tap``), which the method passes in.

    ``positions="removed"`` adds the position table to the mask tokens only, as BootMAE's decoders
    do (the visible latents carry their positions from the encoder); ``"all"`` to every token as
    the MAE decoder. ``head_dim`` sets the attention's inner width (BootMAE: 12 heads of 42 in a
    512-wide decoder); ``table`` replaces the sin-cos table (1, P+h·w, D) with a method's own.
    ``embed_context``: the context goes through the decoder's own input Linear first (SiamMAE: the
    past frame's latents, no positions added) and the blocks read it at the decoder width.
    ``block_order`` / ``norm_first``: see :class:`~maekit.nn.attention.CrossAttentionBlock`.
    """

    def __init__(self, encoder_dim: int, out_dim: int, grid_size: int | tuple[int, int] = 14,
                 embed_dim: int = 512, depth: int = 2, num_heads: int = 16, mlp_ratio: float = 4.0,
                 context_dim: int | None = None, context_tap: int = -1, head_dim: int | None = None,
                 positions: str = "all", num_prefix_tokens: int = 1, table: torch.Tensor | None = None,
                 embed_context: bool = False, block_order: tuple[str, ...] = ("self", "cross", "mlp"),
                 norm_first: bool = True) -> None:
        super().__init__(encoder_dim, out_dim, grid_size, embed_dim, depth=0, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, num_prefix_tokens=num_prefix_tokens)
        if positions not in ("all", "removed"):
            raise ValueError(f"decoder positions must be 'all' or 'removed', got {positions!r}")
        self.positions, self.context_tap, self.embed_context = positions, context_tap, embed_context
        if table is not None:
            self.pos_embed.data.copy_(table)
        context_width = embed_dim if embed_context else context_dim or encoder_dim
        self.blocks = nn.Sequential(*(CrossAttentionBlock(embed_dim, num_heads, context_width, mlp_ratio, head_dim,
                                                          order=block_order, norm_first=norm_first)
                                      for _ in range(depth)))
        self.blocks.apply(init_mae_weights)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
                context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            raise ValueError(f"{type(self).__name__} needs the encoder state of tap {self.context_tap} as context")
        if mask.thrown is not None:
            raise ValueError(f"{type(self).__name__} cannot drop thrown tokens (a masker with throw_ratio > 0); use the MAE decoder")
        x = self.with_mask_tokens(latents, mask)
        positions = self.position_embedding(tokens).to(x.dtype)
        if self.positions == "removed":
            where = torch.cat([mask.masked.new_zeros(mask.masked.shape[0], self.num_prefix_tokens), mask.masked], dim=1)
            positions = positions * where.unsqueeze(-1).to(x.dtype)
        x = x + positions
        if self.embed_context:
            context = self.embed(context)
        for block in self.blocks:
            x = block(x, context)
        return self.pred(self.norm(x))[:, self.num_prefix_tokens:]


class LinearHead(Decoder):
    """No decoder: a Linear from the encoder's output of every token to the target (MaskFeat's
    head; BEiT's ``lm_head`` over a vocabulary of ``out_dim`` ids; the encoder saw every token, see
    :class:`~maekit.model.MaskTokenModel`). Prefix (cls) outputs are dropped. Init: truncated
    normal ``std`` (MaskFeat 0.02), zero bias; ``std=0`` starts at zero (iGPT's output table
    ``wtet``), ``bias=False`` has none (iGPT).

    ``positions="removed"``: only the removed tokens' rows are computed, as BEiT's head does
    (``lm_head(x[mask])``: 75 of 196 rows over an 8192-id vocabulary); the other rows are zero —
    pair it with a loss over the removed tokens only (``masked_cross_entropy``, ``over="removed"``,
    which reads only those rows). ``"all"``: every token's."""

    def __init__(self, encoder_dim: int, out_dim: int, num_prefix_tokens: int = 1, std: float = 0.02,
                 bias: bool = True, positions: str = "all") -> None:
        super().__init__()
        if positions not in ("all", "removed"):
            raise ValueError(f"linear head positions must be 'all' or 'removed', got {positions!r}")
        self.num_prefix_tokens, self.positions = num_prefix_tokens, positions
        self.pred = nn.Linear(encoder_dim, out_dim, bias=bias)
        if std > 0:
            nn.init.trunc_normal_(self.pred.weight, std=std)
        else:
            nn.init.zeros_(self.pred.weight)
        if self.pred.bias is not None:
            nn.init.zeros_(self.pred.bias)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        if latents.shape[1] != self.num_prefix_tokens + tokens.num_tokens:
            raise ValueError(f"a linear head predicts from every token: expected {self.num_prefix_tokens} + "
                             f"{tokens.num_tokens} latents, got {latents.shape[1]} (the encoder must see every token)")
        outputs = latents[:, self.num_prefix_tokens:]
        if self.positions == "all":
            return self.pred(outputs)
        removed = mask.predicted.bool()
        rows = self.pred(outputs[removed])
        logits = rows.new_zeros(*removed.shape, self.pred.out_features)  # in the head's dtype (bf16 under autocast)
        logits[removed] = rows
        return logits
