"""BEiT's encoder (Bao et al., ICLR 2022; microsoft/unilm ``beit/modeling_pretrain.py``): a ViT
that sees every patch — the masked ones' embeddings replaced by a learned mask token — with no
absolute position embedding; instead a relative position bias added to every attention's scores,
one table shared by all blocks in pre-training (or one per block, as fine-tuning uses). Query and
value biases without a key bias, layer scale (γ = 0.1 for B, 1e-5 for L), pre-norm, LN eps 1e-6.

Parameter names are the official checkpoints' and timm's ``Beit`` apart from layer scale, which
timm's ViT block names ``ls1.gamma`` / ``ls2.gamma`` (``gamma_1`` / ``gamma_2`` there): see
:mod:`maekit_beit.convert`.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from maekit.nn.attention import Attention
from maekit.nn.encoder import TokenEncoder, embed_patch_values, make_blocks
from maekit.nn.patchify import as_pair
from maekit.structures import Tokens

__all__ = ["relative_position_index", "gather_bias", "add_relative_table", "RelativePositionBias", "RelPosAttention", "BEiTEncoder", "beit_init",
           "BEIT_SIZES"]

#: (embed_dim, depth, num_heads, layer-scale init) of the paper's sizes
BEIT_SIZES = {"base": (768, 12, 12, 0.1), "large": (1024, 24, 16, 1e-5)}


def relative_position_index(grid: tuple[int, int]) -> torch.Tensor:
    """(1 + h·w)² indices into a table of (2h − 1)(2w − 1) + 3 rows: token i → token j reads row
    (Δrow + h − 1)(2w − 1) + (Δcol + w − 1) with Δ = i − j; the last three rows are class → token,
    token → class and class → class (the reference's layout, class token first)."""
    height, width = grid
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # 2 × N, row-major
    delta = coords[:, :, None] - coords[:, None, :]  # 2 × N × N
    distances = (2 * height - 1) * (2 * width - 1)
    index = torch.empty(height * width + 1, height * width + 1, dtype=torch.long)
    index[1:, 1:] = (delta[0] + height - 1) * (2 * width - 1) + (delta[1] + width - 1)
    index[0, :] = distances  # class → token
    index[:, 0] = distances + 1  # token → class
    index[0, 0] = distances + 2  # class → class
    return index


def gather_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The bias heads × L × L that ``index`` (L × L rows) reads from ``table`` (rows × heads)."""
    length = index.shape[0]
    return table[index.view(-1)].view(length, length, -1).permute(2, 0, 1)


def add_relative_table(module: nn.Module, grid: tuple[int, int], num_heads: int) -> None:
    """Give ``module`` a learned table ``relative_position_bias_table`` (rows as
    :func:`relative_position_index`, one column per head, init 0) and its index buffer
    ``relative_position_index`` — the checkpoints' names, whether shared or a block's own."""
    rows = (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3
    module.relative_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))
    # not saved: it is a function of the grid (official checkpoints carry it; converters drop it)
    module.register_buffer("relative_position_index", relative_position_index(tuple(grid)), persistent=False)


class RelativePositionBias(nn.Module):
    """A learned table (rows as :func:`relative_position_index`, one column per head), init 0;
    returns the bias heads × (1 + N) × (1 + N) added to the attention scores."""

    relative_position_index: torch.Tensor

    def __init__(self, grid: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        add_relative_table(self, self.grid, num_heads)

    def forward(self) -> torch.Tensor:
        return gather_bias(self.relative_position_bias_table, self.relative_position_index)


class RelPosAttention(Attention):
    """Core's attention with a relative position table of its own (BEiT's per-block setting, as
    fine-tuned checkpoints hold them: ``blocks.i.attn.relative_position_bias_table``), added to
    whatever additive bias the encoder passes (the shared table's, or none)."""

    relative_position_index: torch.Tensor

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int]) -> None:
        super().__init__(dim, num_heads, qkv_bias="qv")
        add_relative_table(self, grid, num_heads)

    def own_bias(self) -> torch.Tensor:
        """This block's relative position bias, heads × (1 + N) × (1 + N) (core's
        ``attention_weights`` adds it too)."""
        return gather_bias(self.relative_position_bias_table, self.relative_position_index)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False) -> torch.Tensor:
        own = self.own_bias().unsqueeze(0)
        return super().forward(x, own if attn_mask is None else attn_mask + own, is_causal)


class BEiTEncoder(TokenEncoder):
    """BEiT's ViT over image patches (``image_patches`` tokens, (p, q, c) order). Every token is
    encoded; removed ones (``meta["masked"]``) become the mask token. ``rel_pos="shared"`` (BEiT
    pre-training: ``rel_pos_bias.relative_position_bias_table``), ``"per_block"`` (each block's own)
    or ``"none"``; ``abs_pos_embed``: a learned absolute table as well (off in BEiT pre-training).
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 init_values: float | None = 0.1, rel_pos: str = "shared", abs_pos_embed: bool = False,
                 drop_path_rate: float = 0.0, init_std: float = 0.02) -> None:
        super().__init__()
        from timm.layers import PatchEmbed

        if rel_pos not in ("shared", "per_block", "none"):
            raise ValueError(f"BEiT encoder rel_pos must be 'shared', 'per_block' or 'none', got {rel_pos!r}")
        image = as_pair(img_size, "img_size")
        self.in_chans, self.embed_dim, self.rel_pos, self.init_std = in_chans, embed_dim, rel_pos, init_std
        self.init_values = init_values
        self.patch_embed = PatchEmbed(image, patch_size, in_chans, embed_dim)
        self.patch_size: tuple[int, int] = tuple(self.patch_embed.patch_size)
        self.grid_size: tuple[int, int] = tuple(self.patch_embed.grid_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        num_tokens = self.grid_size[0] * self.grid_size[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + 1, embed_dim)) if abs_pos_embed else None
        self.rel_pos_bias = RelativePositionBias(self.grid_size, num_heads) if rel_pos == "shared" else None
        attention = ((lambda _: RelPosAttention(embed_dim, num_heads, self.grid_size)) if rel_pos == "per_block"
                     else None)
        self.norm_pre = nn.Identity()
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, 1e-6, drop_path_rate, qkv_bias="qv",
                                  init_values=init_values, attention=attention)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        beit_init(self, init_std)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        return embed_patch_values(self.patch_embed, values, self.in_chans)

    def check_grid(self, tokens: Tokens) -> None:
        grid = tuple(tokens.meta.get("grid_size", self.grid_size))
        if grid != self.grid_size or tokens.num_tokens != grid[0] * grid[1]:
            raise ValueError(f"the BEiT encoder was built for a {self.grid_size[0]}×{self.grid_size[1]} patch grid "
                             f"(img_size / patch_size); these tokens lie on {grid} ({tokens.num_tokens} tokens)")

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        self.check_grid(tokens)
        if self.pos_embed is None:
            return torch.zeros((), dtype=self.cls_token.dtype, device=self.cls_token.device)
        index = (tokens.coords[..., 0] * self.grid_size[1] + tokens.coords[..., 1]).long()
        return self.pos_embed[0, 1:][index]

    def prefix_tokens(self) -> torch.Tensor:
        return self.cls_token if self.pos_embed is None else self.cls_token + self.pos_embed[:, :1]

    def attention_mask(self, tokens: Tokens) -> torch.Tensor | None:
        """The shared relative position bias (1 × heads × (1 + N)²), added to every block's scores."""
        if tokens.meta.get("attn_mask") is not None:
            raise ValueError("the BEiT encoder attends over every token with its relative position bias; it takes no "
                             "attention mask from the tokens")
        return None if self.rel_pos_bias is None else self.rel_pos_bias().unsqueeze(0)

    def timm_export(self) -> tuple[dict[str, torch.Tensor], str, dict]:
        """For ``maekit export``: the encoder in timm ``Beit`` keys with the shared table copied into
        every block (the layout BEiT's fine-tuning starts from and timm's ``beit_*`` models take), the
        architecture and the arguments that rebuild it. The final norm is kept (``global_pool="token"``
        uses it); BEiT's mean-pooled fine-tuning drops it for a fresh ``fc_norm`` instead."""
        from maekit_beit.convert import maekit_to_timm_beit

        state = maekit_to_timm_beit({f"encoder.{k}": v for k, v in self.state_dict().items()},
                                    per_block=self.rel_pos == "shared")
        block = self.blocks[0]
        args = {"img_size": [g * p for g, p in zip(self.grid_size, self.patch_size)], "patch_size": self.patch_size[0],
                "in_chans": self.in_chans, "embed_dim": self.embed_dim, "depth": len(self.blocks),
                "num_heads": block.attn.num_heads, "mlp_ratio": block.mlp.fc1.out_features / self.embed_dim,
                "init_values": self.init_values,  # gammas exist (and are loaded) only with layer scale
                "use_abs_pos_emb": self.pos_embed is not None, "use_rel_pos_bias": self.rel_pos != "none",
                "use_shared_rel_pos_bias": False, "global_pool": "token"}
        architecture = "beit_large_patch16_224" if self.embed_dim == 1024 else "beit_base_patch16_224"
        return state, architecture, args  # the arguments set every size; the name only picks timm's family

    def no_weight_decay(self) -> set[str]:
        """As the reference's ``no_weight_decay()``: the class token and the absolute table. The mask
        token and the relative tables are decayed (unilm's default; its
        ``--disable_weight_decay_on_rel_pos_bias`` is off)."""
        return {"cls_token"} | ({"pos_embed"} if self.pos_embed is not None else set())


def beit_init(module: nn.Module, std: float = 0.02) -> None:
    """The reference's initialisation (``_init_weights`` + ``fix_init_weight``): every Linear and
    Conv weight — and the class token, mask token and absolute table — truncated normal with
    ``std`` cut at ±1 std (the reference's ``trunc_normal_(a=-std, b=std)``), biases 0,
    LayerNorms 1 / 0; then each block's attention output and second MLP layer divided by √(2l)
    (block l, from 1). Relative tables and layer scale keep their init (0, γ)."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(sub.weight, std=std, a=-std, b=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
    for name in ("cls_token", "mask_token", "pos_embed"):
        parameter = getattr(module, name, None)
        if isinstance(parameter, nn.Parameter):
            nn.init.trunc_normal_(parameter, std=std, a=-std, b=std)
    for layer, block in enumerate(getattr(module, "blocks", ()), start=1):
        with torch.no_grad():
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))
