"""open_clip ↔ maekit FLIP: weights of an open_clip ViT CLIP (``open_clip.model.CLIP`` with a
ViT visual tower) load into maekit's towers, and back.

The towers compute the same function: open_clip's ``ResidualAttentionBlock`` (ln_1, fused
in-projection, out-projection, ln_2, c_fc, GELU, c_proj) is timm's ``Block`` (norm1, qkv, proj,
norm2, fc1, fc2); its patch dropout keeps cls and a random subset of patches after the position
embedding and before ``ln_pre``, which is what maekit's masking of tokens before embedding gives.
maekit's side must be built with ``pool="cls", fixed_pos_embed=False`` (open_clip's ``tok`` pool
and learned positions); models with QuickGELU (OpenAI's original weights) are refused.
"""
from __future__ import annotations

import re
from typing import Any

import torch

from maekit_flip.model import FLIP, flip

__all__ = ["open_clip_to_maekit", "maekit_to_open_clip", "flip_from_open_clip", "flip_kwargs_from_open_clip"]

# Every table row is (open_clip name, maekit name): one table serves both directions.
_BLOCK_PARTS = [("ln_1.", "norm1."), ("attn.in_proj_weight", "attn.qkv.weight"), ("attn.in_proj_bias", "attn.qkv.bias"),
                ("attn.out_proj.", "attn.proj."), ("ln_2.", "norm2."), ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")]
_BLOCKS = [("visual.transformer.resblocks.", "encoder.blocks."), ("transformer.resblocks.", "target.blocks.")]
_PREFIXES = [("visual.conv1.weight", "encoder.patch_embed.proj.weight"), ("visual.ln_pre.", "encoder.norm_pre."),
             ("visual.ln_post.", "encoder.norm."), ("token_embedding.", "target.token_embedding."),
             ("positional_embedding", "target.positional_embedding"), ("ln_final.", "target.norm."),
             ("logit_scale", "loss.logit_scale")]
# whole tensors whose layout differs: (open_clip name, maekit name, to maekit, to open_clip)
_RESHAPED = [("visual.class_embedding", "encoder.cls_token", lambda v: v.reshape(1, 1, -1), lambda v: v.reshape(-1)),
             ("visual.positional_embedding", "encoder.pos_embed", lambda v: v.unsqueeze(0), lambda v: v[0]),
             ("visual.proj", "decoder.proj.weight", torch.t, torch.t),  # open_clip: x @ proj; maekit: Linear
             ("text_projection", "target.proj.weight", torch.t, torch.t)]


def _block_key(key: str, source: str, target: str, parts: list[tuple[str, str]]) -> str | None:
    match = re.fullmatch(re.escape(source) + r"(\d+)\.(.+)", key)
    if not match:
        return None
    number, rest = match.groups()
    for old, new in parts:
        if rest.startswith(old):
            return f"{target}{number}.{new}{rest[len(old):]}"
    raise KeyError(f"unexpected block parameter {key!r}")


def _convert(key: str, value: torch.Tensor, to_maekit: bool) -> tuple[str, torch.Tensor] | None:
    """``key``'s name and tensor on the other side, or None when no table names it."""
    src, dst = (0, 1) if to_maekit else (1, 0)
    for row in _RESHAPED:
        if key == row[src]:
            return row[dst], row[2 if to_maekit else 3](value)
    parts = [(part[src], part[dst]) for part in _BLOCK_PARTS]
    for blocks in _BLOCKS:
        if (new := _block_key(key, blocks[src], blocks[dst], parts)) is not None:
            return new, value
    for prefix in _PREFIXES:
        if key.startswith(prefix[src]):
            return prefix[dst] + key[len(prefix[src]):], value
    return None


def open_clip_to_maekit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An open_clip ViT CLIP state dict in maekit FLIP's keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == "attn_mask":
            continue  # the causal mask is a buffer in old open_clip; maekit builds it
        converted = _convert(key, value, to_maekit=True)
        if converted is None:
            raise KeyError(f"open_clip key {key!r} has no place in maekit FLIP (only ViT CLIP models convert)")
        out[converted[0]] = converted[1]
    return out


def maekit_to_open_clip(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A maekit FLIP state dict in open_clip's keys (the reconstruction head, if any, is dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("pixel_"):
            continue
        converted = _convert(key, value, to_maekit=False)
        if converted is None:
            raise KeyError(f"maekit key {key!r} has no place in open_clip's CLIP")
        out[converted[0]] = converted[1]
    return out


def flip_kwargs_from_open_clip(model: Any) -> dict[str, Any]:
    """``flip(...)`` arguments that rebuild an open_clip CLIP's architecture (mask ratio 0.5)."""
    visual = model.visual
    if not hasattr(visual, "conv1") or not hasattr(visual, "class_embedding"):
        raise ValueError(f"only open_clip ViT image towers convert; got {type(visual).__name__}")
    if getattr(visual, "pool_type", "tok") != "tok" or getattr(model, "text_pool_type", "argmax") != "argmax":
        raise ValueError("only open_clip models with the cls-token image pool and the argmax text pool convert")
    block = visual.transformer.resblocks[0]
    if type(block.mlp.gelu).__name__ == "QuickGELU":
        raise ValueError("open_clip QuickGELU models (OpenAI's original weights) are not supported by maekit's blocks")
    width = visual.conv1.out_channels
    text_width = model.token_embedding.weight.shape[1]
    return dict(
        encoder_name="vit_base_patch16_clip_224", img_size=tuple(visual.image_size),
        patch_size=visual.conv1.kernel_size[0], in_chans=visual.conv1.in_channels,
        encoder=dict(embed_dim=width, depth=len(visual.transformer.resblocks), num_heads=block.attn.num_heads,
                     mlp_ratio=block.mlp.c_fc.out_features / width),
        fixed_pos_embed=False, pool="cls", embed_dim=visual.proj.shape[1],
        text=dict(width=text_width, depth=len(model.transformer.resblocks),
                  num_heads=model.transformer.resblocks[0].attn.num_heads,
                  context_length=model.positional_embedding.shape[0], vocab_size=model.token_embedding.num_embeddings,
                  mlp_ratio=model.transformer.resblocks[0].mlp.c_fc.out_features / text_width))


def flip_from_open_clip(model: Any, mask_ratio: float = 0.5) -> FLIP:
    """A maekit FLIP with an open_clip CLIP's architecture and weights."""
    flip_model = flip(**flip_kwargs_from_open_clip(model), mask_ratio=mask_ratio)
    flip_model.load_state_dict(open_clip_to_maekit(model.state_dict()))
    return flip_model
