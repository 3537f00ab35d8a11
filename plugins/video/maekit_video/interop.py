"""Weights from elsewhere into ``videomae`` and ``video_classifier``: transformers'
``VideoMAEForPreTraining`` (split q/k/v → fused qkv with q/v biases) and the official VideoMAE
checkpoints (pre-training: ``encoder.*``, ``encoder_to_decoder``, ``mask_token``, ``decoder.*``;
fine-tuning: ``patch_embed``, ``blocks``, ``fc_norm``, ``head``), inside a ``model`` or
``module`` wrapper or not, keys possibly prefixed ``module.``. Position tables are not stored by
either: the models rebuild them bit-exactly."""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch

__all__ = ["state_from_transformers", "convert_videomae_checkpoint"]

_HF_BLOCK = {"layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
# transformers stores the query and value biases as attention.attention.{query,value}.bias (v5) or
# q_bias / v_bias (v4); the key projection has none
_HF_QKV = {"query.weight": "q", "key.weight": "k", "value.weight": "v", "query.bias": "q_bias", "q_bias": "q_bias",
           "value.bias": "v_bias", "v_bias": "v_bias"}


def _hf_blocks(state: Mapping[str, torch.Tensor], source: str, target: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    attention: dict[str, dict[str, torch.Tensor]] = {}
    pattern = re.compile(rf"^{re.escape(source)}\.(\d+)\.(.+)$")
    for key, value in state.items():
        match = pattern.match(key)
        if not match:
            continue
        index, rest = match.groups()
        if rest.startswith("attention.attention."):
            part = _HF_QKV.get(rest[len("attention.attention."):])
            if part is None:
                raise ValueError(f"transformers key {key} has no counterpart in maekit's VideoMAE (a key bias?)")
            attention.setdefault(index, {})[part] = value
            continue
        for hf, ours in _HF_BLOCK.items():
            if rest.startswith(hf + "."):
                out[f"{target}.{index}.{ours}{rest[len(hf):]}"] = value
                break
        else:
            raise ValueError(f"transformers key {key} has no counterpart in maekit's VideoMAE")
    for index, parts in attention.items():
        out[f"{target}.{index}.attn.qkv.weight"] = torch.cat([parts["q"], parts["k"], parts["v"]])
        out[f"{target}.{index}.attn.q_bias"], out[f"{target}.{index}.attn.v_bias"] = parts["q_bias"], parts["v_bias"]
    return out


def state_from_transformers(hf_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of transformers' ``VideoMAEForPreTraining`` (``use_mean_pooling=False``,
    ``qkv_bias=True``) in the layout of maekit's ``videomae``."""
    state = dict(hf_state)
    out = {
        "encoder.patch_embed.proj.weight": state["videomae.embeddings.patch_embeddings.projection.weight"],
        "encoder.patch_embed.proj.bias": state["videomae.embeddings.patch_embeddings.projection.bias"],
        "decoder.embed.weight": state["encoder_to_decoder.weight"],
        "decoder.mask_token": state["mask_token"],
    }
    for part in ("weight", "bias"):
        if f"videomae.layernorm.{part}" not in state:
            raise ValueError("transformers' model has no final encoder LayerNorm: build it with use_mean_pooling=False")
        out[f"encoder.norm.{part}"] = state[f"videomae.layernorm.{part}"]
        out[f"decoder.norm.{part}"] = state[f"decoder.norm.{part}"]
        out[f"decoder.pred.{part}"] = state[f"decoder.head.{part}"]
    out.update(_hf_blocks(state, "videomae.encoder.layer", "encoder.blocks"))
    out.update(_hf_blocks(state, "decoder.decoder_layers", "decoder.blocks"))
    return out


def _unwrap(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    state: Any = checkpoint
    for key in ("model", "module", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("expected a state dict of tensors (or one inside 'model' / 'module')")
    return {(key[len("module."):] if key.startswith("module.") else key): value for key, value in state.items()}


_BLOCK_PARTS = r"(norm1|norm2)\.(weight|bias)|attn\.(qkv\.weight|q_bias|v_bias|proj\.(weight|bias))|mlp\.fc[12]\.(weight|bias)"


def convert_videomae_checkpoint(checkpoint: Mapping[str, Any], source: str = "auto") -> tuple[dict[str, torch.Tensor], str]:
    """An official VideoMAE checkpoint in maekit's layout and which it was: ``"pretrain"`` (for
    ``videomae``) or ``"finetune"`` (for ``video_classifier``). Any key outside the known layout is
    an error naming it (a strict conversion: nothing silently dropped)."""
    state = _unwrap(checkpoint)
    if source == "auto":
        source = "pretrain" if "encoder_to_decoder.weight" in state else "finetune"
    if source not in ("pretrain", "finetune"):
        raise ValueError(f"source must be 'auto', 'pretrain' or 'finetune', got {source!r}")
    block = re.compile(rf"^(encoder\.|decoder\.)?blocks\.\d+\.({_BLOCK_PARTS})$")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if source == "pretrain":
            renamed = {"encoder_to_decoder.weight": "decoder.embed.weight", "mask_token": "decoder.mask_token",
                       "decoder.head.weight": "decoder.pred.weight", "decoder.head.bias": "decoder.pred.bias"}.get(key)
            if renamed is None and (block.match(key) and not key.startswith("blocks.") or key in (
                    "encoder.patch_embed.proj.weight", "encoder.patch_embed.proj.bias", "encoder.norm.weight",
                    "encoder.norm.bias", "decoder.norm.weight", "decoder.norm.bias")):
                renamed = key
        else:
            renamed = None
            if (block.match(key) and key.startswith("blocks.")) or key.startswith("patch_embed.proj."):
                renamed = "encoder." + key
            elif key in ("fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"):
                renamed = key
        if renamed is None:
            raise ValueError(f"key {key!r} is not part of the official VideoMAE {source} layout "
                             f"(pos_embed and final norms of mean-pooling models are not stored there)")
        out[renamed] = value
    return out, source
