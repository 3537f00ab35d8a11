"""Transformer encoders over visible tokens: a timm ViT for images, a generic one for coordinates."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from maekit.nn.attention import attention_weights
from maekit.nn.base import Encoder
from maekit.nn.patchify import as_pair
from maekit.nn.pos_embed import resample_grid_table, sincos_2d_table, sincos_embed
from maekit.ops import init_mae_weights
from maekit.structures import Tokens

__all__ = ["TokenEncoder", "ViTEncoder", "TransformerEncoder", "Intermediates", "make_blocks", "run_blocks", "run_block",
           "embed_patch_values"]


def make_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
                norm_eps: float = 1e-6, drop_path_rate: float = 0.0, qkv_bias: bool | str = True,
                init_values: float | None = None, attention: Callable[[int], nn.Module] | None = None) -> nn.Sequential:
    """timm transformer blocks as the reference uses them (qkv bias on, LayerNorm eps 1e-6),
    attending through :func:`maekit.nn.attention.attend` (float32 under CPU autocast).
    ``qkv_bias="qv"``: query and value biases without a key bias (BEiT, VideoMAE).
    ``init_values``: layer scale (``ls1.gamma``, ``ls2.gamma``) starting at this value (BEiT 0.1).
    ``attention``: builds block ``i``'s attention (0-based) in place of :class:`~maekit.nn.attention.Attention`
    (one with its own relative position table, BEiT's per-layer setting)."""
    from timm.models.vision_transformer import Block

    from maekit.nn.attention import Attention

    if depth and dim % num_heads:
        raise ValueError(f"width {dim} must be divisible by num_heads {num_heads}")
    rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist() if depth else []  # numbers, not weights
    norm_layer: Any = partial(nn.LayerNorm, eps=norm_eps)  # timm annotates a class; any callable works
    blocks = [Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=rate, norm_layer=norm_layer, init_values=init_values)
              for rate in rates]
    for index, block in enumerate(blocks):  # timm's Block takes an attention class only from timm 1.0.20 on
        block.attn = Attention(dim, num_heads, qkv_bias=qkv_bias) if attention is None else attention(index)
    return nn.Sequential(*blocks)


def embed_patch_values(patch_embed: Any, values: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A timm ``PatchEmbed`` applied to patch values already cut out (B×N×(p·q·C), (p, q, c)
    order): its conv weight used as a matrix, the same arithmetic as the conv over the image,
    so only the tokens given are embedded."""
    weight = patch_embed.proj.weight  # (D, C, p, q) → (D, p·q·C) to match the patch layout
    if values.shape[-1] != weight[0].numel():
        p, q = weight.shape[-2:]
        raise ValueError(f"encoder expects {p}×{q} patches with {in_chans} channels ({p * q * in_chans} values per "
                         f"token), got {values.shape[-1]}")
    matrix = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return patch_embed.norm(nn.functional.linear(values, matrix, patch_embed.proj.bias))


def run_blocks(blocks: Iterable[nn.Module], x: torch.Tensor, positions: torch.Tensor | None = None,
               attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Transformer blocks in order. ``positions`` (if given) are added before every block, as
    Point-MAE and MAE3D do; ``attn_mask`` (if given) is passed to every block (padding hidden)."""
    if positions is None and attn_mask is None and isinstance(blocks, nn.Sequential):
        return blocks(x)  # the stack as one module: hooks on it see the whole pass
    for block in blocks:
        x = run_block(block, x, positions, attn_mask)
    return x


def run_block(block: nn.Module, x: torch.Tensor, positions: torch.Tensor | None = None,
              attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One step of :func:`run_blocks`."""
    if positions is not None:
        x = x + positions
    return block(x) if attn_mask is None else block(x, attn_mask=attn_mask)


@dataclass
class Intermediates:
    """What :meth:`TokenEncoder.forward_intermediates` returns, keyed by tap: ``features[t]``
    (B×(P+N)×D, before the final norm; tap 0 = the first block's input, t = block t's output) and,
    when asked, ``attention[t]`` (B×heads×(P+N)×(P+N): the softmax weights block t applied)."""

    features: dict[int, torch.Tensor]
    attention: dict[int, torch.Tensor] = field(default_factory=dict)


class TokenEncoder(Encoder):
    """embed tokens → add positions → prepend prefix tokens → blocks → norm (one pass, top to bottom).

    Subclasses say how tokens are embedded and where they are; the pass is shared. An encoder whose
    positions join every block (Point-MAE) returns them from :meth:`block_positions`; one whose
    attention must skip some tokens (padding) returns a mask from :meth:`attention_mask`.
    """

    num_prefix_tokens = 1
    blocks: nn.Sequential | nn.ModuleList
    norm_pre: nn.Module
    norm: nn.Module

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError

    def prefix_tokens(self) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, tokens: Tokens) -> torch.Tensor:
        """Token embeddings with their positions (an encoder whose embedding depends on more than
        the values, e.g. one patch embedding per modality, overrides this). Tokens that carry
        ``meta["masked"]`` (B×N, 1 = removed: an encoder that sees every token, BEiT / MaskFeat)
        have the removed ones' embeddings replaced by the learned mask token before positions."""
        x = self.embed_tokens(tokens.values)
        masked = tokens.meta.get("masked")
        if masked is not None:
            mask_token = getattr(self, "mask_token", None)
            if mask_token is None:
                raise ValueError(f"{type(self).__name__} has no mask token; build it with mask_token=True to "
                                 f"encode every token with the removed ones replaced")
            weight = masked.to(x.dtype).unsqueeze(-1)
            x = x * (1 - weight) + mask_token.to(x.dtype) * weight
        return x + self.position_embedding(tokens)

    def add_mask_token(self, dim: int, std: float = 0.02) -> None:
        """Give the encoder a learned mask token (truncated normal, as BEiT and MaskFeat init it)."""
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=std)

    def block_inputs(self, tokens: Tokens) -> torch.Tensor:
        """What the first block sees: prefix tokens, then the embedded tokens, after ``norm_pre``."""
        x = self.embed(tokens)
        prefix = self.prefix_tokens().expand(x.shape[0], -1, -1).to(x.dtype)
        return self.norm_pre(torch.cat([prefix, x], dim=1))

    def block_positions(self, tokens: Tokens) -> torch.Tensor | None:
        """Positions (B×(P+N)×D) added before every block, or None: here they join once, in :meth:`embed`."""
        return None

    def attention_mask(self, tokens: Tokens) -> torch.Tensor | None:
        """A mask every block's attention takes (True = may attend; B×1×(P+N)×(P+N) or
        (P+N)×(P+N), prefix tokens first), or None: the one the tokens carry as ``meta["attn_mask"]``
        (a method that orders its tokens, SAIM's content stream), else none."""
        return tokens.meta.get("attn_mask")

    def forward(self, tokens: Tokens) -> torch.Tensor:
        x = self.block_inputs(tokens)
        positions = self.block_positions(tokens)
        return self.norm(run_blocks(self.blocks, x, None if positions is None else positions.to(x.dtype),
                                    self.attention_mask(tokens)))

    def forward_intermediates(self, tokens: Tokens, taps: Sequence[int] | None = None,
                              attention: bool = False) -> Intermediates:
        """Chosen states of the pass, before the final norm: tap 0 is the first block's input, tap t
        block t's output, negative taps count from the end (-1: the last block); None: every tap.
        With ``attention``, also the attention weights of the tapped blocks (t ≥ 1). Blocks after
        the last tap are not run."""
        depth = len(self.blocks)
        wanted = set(range(depth + 1)) if taps is None else {self._tap(t, depth) for t in taps}
        if not wanted:
            return Intermediates(features={})
        x = self.block_inputs(tokens)
        positions = self.block_positions(tokens)
        positions = None if positions is None else positions.to(x.dtype)
        attn_mask = self.attention_mask(tokens)
        found = Intermediates(features={0: x} if 0 in wanted else {})
        block: Any  # a transformer block with timm's layout (norm1, attn)
        for t, block in enumerate(self.blocks, start=1):
            if t > max(wanted):
                break
            if attention and t in wanted:
                seen = x if positions is None else x + positions
                found.attention[t] = attention_weights(block.attn, block.norm1(seen), attn_mask)
            x = run_block(block, x, positions, attn_mask)
            if t in wanted:
                found.features[t] = x
        return found

    def resolve_tap(self, tap: int) -> int:
        """The block index (0..depth) a tap names: negative taps count from the end."""
        return self._tap(tap, len(self.blocks))

    @staticmethod
    def _tap(tap: int, depth: int) -> int:
        index = tap + depth + 1 if tap < 0 else tap
        if not 0 <= index <= depth:
            raise ValueError(f"tap {tap} is outside an encoder of {depth} blocks (0..{depth}, or -{depth + 1}..-1)")
        return index

    def hidden_states(self, tokens: Tokens) -> list[torch.Tensor]:
        """Every state of the pass (B×(P+N)×D each): the block inputs, then each block's output
        (the final norm not applied) — for methods that read intermediate layers."""
        features = self.forward_intermediates(tokens).features
        return [features[t] for t in sorted(features)]


class ViTEncoder(TokenEncoder):
    """The reference MAE encoder as a timm ``VisionTransformer`` (any timm ViT name).

    Its state dict is the timm model's own (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
    ``blocks``, ``norm``), so it loads into ``timm.create_model(model_name, num_classes=0)``; only
    the classification head is missing. The patch embedding runs on visible patches only (the conv
    weight applied as a matrix to (p, q, c)-ordered patches, the same arithmetic as the conv). With
    ``fixed_pos_embed`` the position table is the reference's frozen 2-D sin-cos table; inputs of
    another size get the table resampled bicubically (``table_scale_offset=0.1``: DINO's and
    CropMAE's evaluation resampling, by scale factors).
    """

    def __init__(self, model_name: str = "vit_base_patch16_224", img_size: int | tuple[int, int] = 224,
                 patch_size: int | None = None, in_chans: int = 3, fixed_pos_embed: bool = True,
                 drop_path_rate: float = 0.0, mask_token: bool = False, table_scale_offset: float = 0.0,
                 **timm_kwargs) -> None:
        super().__init__()
        import timm
        from timm.models.vision_transformer import VisionTransformer

        if patch_size is not None:
            timm_kwargs["patch_size"] = patch_size
        if not timm.is_model(model_name):
            raise ValueError(f"encoder model_name {model_name!r} is not a timm model name "
                             f"(e.g. vit_base_patch16_224; see timm.list_models('vit_*'))")
        family = timm.models.model_entrypoint(model_name).__module__
        if family != "timm.models.vision_transformer":
            raise ValueError(f"encoder model_name {model_name!r} is not a plain timm VisionTransformer ({family}); "
                             f"use a vit_* model such as vit_base_patch16_224")
        vit = timm.create_model(model_name, pretrained=False, num_classes=0, img_size=as_pair(img_size, "img_size"),
                                in_chans=in_chans, drop_path_rate=drop_path_rate, **timm_kwargs)
        if type(vit) is not VisionTransformer or not vit.has_class_token or vit.num_prefix_tokens != 1 or vit.no_embed_class:
            raise ValueError(f"encoder model_name {model_name!r} is not a plain timm VisionTransformer with one "
                             f"class token (e.g. vit_base_patch16_224); got {type(vit).__name__}")
        self.model_name = model_name
        self.in_chans = in_chans
        self.embed_dim: int = vit.embed_dim
        self.patch_size: tuple[int, int] = tuple(vit.patch_embed.patch_size)
        self.grid_size: tuple[int, int] = tuple(vit.patch_embed.grid_size)
        self.patch_embed = vit.patch_embed
        assert vit.cls_token is not None and vit.pos_embed is not None  # checked above: a class token, a table
        self.cls_token: nn.Parameter = vit.cls_token
        self.pos_embed: nn.Parameter = vit.pos_embed
        self.norm_pre = vit.norm_pre
        self.blocks = vit.blocks
        self.norm = vit.norm
        self.fixed_pos_embed = fixed_pos_embed
        if not 0.0 <= table_scale_offset < 1.0:
            raise ValueError(f"encoder table_scale_offset must be in [0, 1) (DINO's resampling: 0.1), got {table_scale_offset!r}")
        self.table_scale_offset = float(table_scale_offset)
        self.reset_parameters()
        if mask_token:  # for methods whose encoder sees every token (MaskFeat, BEiT)
            self.add_mask_token(self.embed_dim)

    def reset_parameters(self) -> None:
        if self.fixed_pos_embed:
            self.pos_embed.data.copy_(self.fixed_table(self.grid_size))
            self.pos_embed.requires_grad_(False)
        else:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        weight = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks.apply(init_mae_weights)
        self.apply(lambda m: init_mae_weights(m) if isinstance(m, nn.LayerNorm) else None)

    def fixed_table(self, grid_size: tuple[int, int]) -> torch.Tensor:
        """The frozen table (1, 1 + h·w, D) of ``fixed_pos_embed``: the reference MAE's 2-D sin-cos
        (a method whose reference lays it out otherwise, e.g. Audio-MAE's, overrides this)."""
        return sincos_2d_table(grid_size, self.embed_dim)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        return embed_patch_values(self.patch_embed, values, self.in_chans)

    def grid_table(self, grid_size: tuple[int, int]) -> torch.Tensor:
        """The position table (1, 1 + h·w, D) for a grid, resampled if it differs from the native one
        (by size, or DINO's way with ``table_scale_offset``)."""
        return resample_grid_table(self.pos_embed, self.grid_size, grid_size, scale_offset=self.table_scale_offset)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        grid = tuple(tokens.meta.get("grid_size", self.grid_size))
        table = self.grid_table(grid)[0, 1:]
        index = (tokens.coords[..., 0] * grid[1] + tokens.coords[..., 1]).long()
        return table[index]

    def prefix_tokens(self) -> torch.Tensor:
        return self.cls_token + self.pos_embed[:, :1]


class TransformerEncoder(TokenEncoder):
    """A ViT-style encoder for any tokens: linear embedding, sin-cos embedding of the coordinates
    (or a learned MLP of them), a class token, timm blocks, LayerNorm."""

    def __init__(self, in_dim: int, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 mlp_ratio: float = 4.0, coord_dim: int = 2, learned_pos: bool = False,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.token_embed = nn.Linear(in_dim, embed_dim)
        self.pos_mlp = (nn.Sequential(nn.Linear(coord_dim, 128), nn.GELU(), nn.Linear(128, embed_dim))
                        if learned_pos else None)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.norm_pre = nn.Identity()
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, drop_path_rate=drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.apply(init_mae_weights)
        nn.init.normal_(self.cls_token, std=0.02)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        return self.token_embed(values)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        if self.pos_mlp is not None:
            return self.pos_mlp(tokens.coords.to(self.cls_token.dtype))
        return sincos_embed(tokens.coords, self.embed_dim).to(self.cls_token.dtype)

    def prefix_tokens(self) -> torch.Tensor:
        return self.cls_token
