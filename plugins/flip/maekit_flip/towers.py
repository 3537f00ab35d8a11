"""FLIP's heads around core's image encoder: the image projection (a ``Decoder``: latents of the
visible patches → one unit vector per image) and the text tower (a ``Target``: the caption's unit
vector, which the image embedding must pick out of the batch).

Layouts follow open_clip so its weights load (``maekit_flip.interop``): learned text positions,
causal self-attention, LayerNorm eps 1e-5, the feature of the end-of-text token (the largest id,
open_clip's ``argmax`` pool), projections without bias.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.base import Decoder, Target
from maekit.nn.encoder import make_blocks
from maekit.ops import gather
from maekit.structures import Mask, Tokens

__all__ = ["ImageProjection", "TextTower", "keep_text_tokens"]


class ImageProjection(Decoder):
    """Pool the image tower's output and project it to the shared space, L2-normalised.

    ``pool="cls"``: the class token (open_clip's ``tok``, CLIP's convention); ``"mean"``: the mean
    of the patch tokens (FLIP's JAX reference, global average pooling; open_clip's ``avg``). With
    masking the mean runs over the visible patches only, as the reference does.
    """

    def __init__(self, width: int, embed_dim: int = 512, pool: str = "cls", num_prefix_tokens: int = 1) -> None:
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"image pool must be 'cls' or 'mean', got {pool!r}")
        self.pool, self.num_prefix_tokens = pool, num_prefix_tokens
        self.proj = nn.Linear(width, embed_dim, bias=False)
        nn.init.normal_(self.proj.weight, std=width ** -0.5)

    def forward(self, latents: torch.Tensor, mask: Mask | None = None, tokens: Tokens | None = None) -> torch.Tensor:
        pooled = latents[:, 0] if self.pool == "cls" else latents[:, self.num_prefix_tokens:].mean(dim=1)
        return F.normalize(self.proj(pooled), dim=-1)


def keep_text_tokens(token_ids: torch.Tensor, num_keep: int, scores: torch.Tensor, padding_first: bool) -> torch.Tensor:
    """Positions (B×num_keep, ascending) of the text tokens kept by text masking.

    Lowest ``scores`` are kept; the end-of-text token is always kept (it is the pooled feature);
    with ``padding_first`` padding (every slot after end-of-text) goes before any real token,
    FLIP's "drop padding first" ablation.
    """
    eot = token_ids.argmax(dim=-1, keepdim=True)
    positions = torch.arange(token_ids.shape[1], device=token_ids.device).expand_as(token_ids)
    scores = scores.clone()
    if padding_first:
        scores = scores + 2.0 * (positions > eot)
    scores.scatter_(1, eot, -1.0)
    kept = torch.argsort(scores, dim=1)[:, :num_keep]
    return kept.sort(dim=1).values


class TextTower(Target):
    """The caption encoder (open_clip's text transformer): token + learned position embedding,
    causal pre-norm blocks, final LayerNorm, the end-of-text token's feature, projection,
    L2-normalised. Reads token ids from ``batch["text"]``.

    ``mask_ratio`` > 0 drops that share of the text tokens in training (FLIP's text-masking
    ablation; 0 in the released recipe): ``mask_type`` "random" or "padding_first".
    """

    def __init__(self, embed_dim: int = 512, width: int = 512, depth: int = 12, num_heads: int = 8,
                 context_length: int = 77, vocab_size: int = 49408, mlp_ratio: float = 4.0,
                 mask_ratio: float = 0.0, mask_type: str = "random") -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"text mask_ratio must be in [0, 1), got {mask_ratio}")
        if mask_type not in ("random", "padding_first"):
            raise ValueError(f"text mask_type must be 'random' or 'padding_first', got {mask_type!r}")
        self.context_length, self.vocab_size = context_length, vocab_size
        self.mask_ratio, self.mask_type = mask_ratio, mask_type
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.blocks = make_blocks(width, depth, num_heads, mlp_ratio, norm_eps=1e-5)
        self.norm = nn.LayerNorm(width, eps=1e-5)
        self.proj = nn.Linear(width, embed_dim, bias=False)
        self.reset_parameters(width, depth)

    def reset_parameters(self, width: int, depth: int) -> None:
        """open_clip's text init: embeddings N(0, 0.02) / N(0, 0.01), attention and MLP weights
        scaled by width and depth, projection N(0, width^-0.5)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std, attn_std, fc_std = (width ** -0.5) * ((2 * depth) ** -0.5), width ** -0.5, (2 * width) ** -0.5
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=attn_std)
            nn.init.normal_(block.attn.proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.fc1.weight, std=fc_std)
            nn.init.normal_(block.mlp.fc2.weight, std=proj_std)
        nn.init.normal_(self.proj.weight, std=width ** -0.5)

    def num_kept(self) -> int:
        """Text tokens the blocks see: all in evaluation, int(L·(1−ratio)) in training."""
        if not self.training or self.mask_ratio == 0:
            return self.context_length
        return max(1, int(self.context_length * (1 - self.mask_ratio)))

    def encode(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Unit caption embeddings (B×embed_dim) for token ids B×context_length."""
        if token_ids.dim() != 2 or token_ids.shape[1] != self.context_length:
            raise ValueError(f"text tower expects token ids (batch × {self.context_length}), got {tuple(token_ids.shape)}")
        if token_ids.dtype not in (torch.int64, torch.int32) or int(token_ids.max()) >= self.vocab_size or int(token_ids.min()) < 0:
            raise ValueError(f"text token ids must be integers in [0, {self.vocab_size}); got dtype {token_ids.dtype}")
        x = self.token_embedding(token_ids) + self.positional_embedding
        ids = token_ids
        num_keep = self.num_kept()
        if num_keep < self.context_length:
            kept = keep_text_tokens(token_ids, num_keep, torch.rand(token_ids.shape, device=x.device),
                                    padding_first=self.mask_type == "padding_first")
            x, ids = gather(x, kept), gather(token_ids, kept)
        for block in self.blocks:
            x = block(x, is_causal=True)
        x = self.norm(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
        return F.normalize(self.proj(pooled), dim=-1)

    def forward(self, tokens: Tokens, batch: Any) -> torch.Tensor:
        if not isinstance(batch, dict) or "text" not in batch:
            raise ValueError("FLIP needs captions: each batch must carry token ids under 'text' "
                             "(a FLIP dataset such as flip_csv, flip_coco_captions or flip_webdataset)")
        return self.encode(batch["text"])
