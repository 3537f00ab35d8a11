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

# (open_clip block part, maekit/timm block part)
_BLOCK_PARTS = [("ln_1.", "norm1."), ("attn.in_proj_weight", "attn.qkv.weight"), ("attn.in_proj_bias", "attn.qkv.bias"),
                ("attn.out_proj.", "attn.proj."), ("ln_2.", "norm2."), ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")]
_FIXED = [("visual.conv1.weight", "encoder.patch_embed.proj.weight"), ("visual.ln_pre.", "encoder.norm_pre."),
          ("visual.ln_post.", "encoder.norm."), ("token_embedding.", "target.token_embedding."),
          ("positional_embedding", "target.positional_embedding"), ("ln_final.", "target.norm."),
          ("logit_scale", "loss.logit_scale")]


def _block_key(key: str, source: str, target: str, parts: list[tuple[str, str]]) -> str | None:
    match = re.fullmatch(re.escape(source) + r"(\d+)\.(.+)", key)
    if not match:
        return None
    number, rest = match.groups()
    for old, new in parts:
        if rest.startswith(old):
            return f"{target}{number}.{new}{rest[len(old):]}"
    raise KeyError(f"unexpected block parameter {key!r}")


def open_clip_to_maekit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An open_clip ViT CLIP state dict in maekit FLIP's keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == "visual.class_embedding":
            out["encoder.cls_token"] = value.reshape(1, 1, -1)
        elif key == "visual.positional_embedding":
            out["encoder.pos_embed"] = value.unsqueeze(0)
        elif key == "visual.proj":
            out["decoder.proj.weight"] = value.t()
        elif key == "text_projection":
            out["target.proj.weight"] = value.t()
        elif key == "attn_mask":
            continue  # the causal mask is a buffer in old open_clip; maekit builds it
        elif (new := _block_key(key, "visual.transformer.resblocks.", "encoder.blocks.", _BLOCK_PARTS)) is not None:
            out[new] = value
        elif (new := _block_key(key, "transformer.resblocks.", "target.blocks.", _BLOCK_PARTS)) is not None:
            out[new] = value
        else:
            for old, new in _FIXED:
                if key.startswith(old):
                    out[new + key[len(old):]] = value
                    break
            else:
                raise KeyError(f"open_clip key {key!r} has no place in maekit FLIP (only ViT CLIP models convert)")
    return out


def maekit_to_open_clip(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A maekit FLIP state dict in open_clip's keys (the reconstruction head, if any, is dropped)."""
    reverse_parts = [(new, old) for old, new in _BLOCK_PARTS]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("pixel_"):
            continue
        if key == "encoder.cls_token":
            out["visual.class_embedding"] = value.reshape(-1)
        elif key == "encoder.pos_embed":
            out["visual.positional_embedding"] = value[0]
        elif key == "decoder.proj.weight":
            out["visual.proj"] = value.t()
        elif key == "target.proj.weight":
            out["text_projection"] = value.t()
        elif (new := _block_key(key, "encoder.blocks.", "visual.transformer.resblocks.", reverse_parts)) is not None:
            out[new] = value
        elif (new := _block_key(key, "target.blocks.", "transformer.resblocks.", reverse_parts)) is not None:
            out[new] = value
        else:
            for old, new in _FIXED:
                if key.startswith(new):
                    out[old + key[len(new):]] = value
                    break
            else:
                raise KeyError(f"maekit key {key!r} has no place in open_clip's CLIP")
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
