"""Official Audio-MAE checkpoints into maekit: the pre-training layout (``models_mae``:
``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks``, ``norm``, ``mask_token``,
``decoder_pos_embed``, ``decoder_embed``, ``decoder_blocks`` — Swin-V2 "cr" blocks with ``attn.tau``
and ``attn.meta_mlp`` — ``decoder_norm``, ``decoder_pred``) into ``audio_mae``, and the fine-tuning
layout (``models_vit``: no ``norm``, ``fc_norm`` and ``head``) into ``audio_classifier``. The files
are ``{"model": state, "optimizer": ..., "args": ...}``, sometimes ``module.``-prefixed."""
from __future__ import annotations

import torch

from maekit.io.convert import rename_keys, strip_module_prefix

__all__ = ["PRETRAIN_RULES", "FINETUNE_RULES", "unwrap_checkpoint", "detect_audio_layout", "convert_audio_checkpoint"]

StateDict = dict[str, torch.Tensor]

_ENCODER = [
    (r"cls_token$", "encoder.cls_token"),
    (r"pos_embed$", "encoder.pos_embed"),
    (r"patch_embed\.proj\.", "encoder.patch_embed.proj."),
    (r"blocks\.(\d+)\.", r"encoder.blocks.\1."),
]
PRETRAIN_RULES = [
    *_ENCODER,
    (r"norm\.", "encoder.norm."),
    (r"mask_token$", "decoder.mask_token"),
    (r"decoder_pos_embed$", "decoder.pos_embed"),
    (r"decoder_embed\.", "decoder.embed."),
    (r"decoder_blocks\.(\d+)\.", r"decoder.blocks.\1."),
    (r"decoder_norm\.", "decoder.norm."),
    (r"decoder_pred\.", "decoder.pred."),
]
FINETUNE_RULES = [*_ENCODER, (r"fc_norm\.", "fc_norm."), (r"head\.", "head.")]


def unwrap_checkpoint(obj: object) -> StateDict:
    """The state dict of an official checkpoint (``{"model": ...}``) or a bare one."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("does not hold a state dict (a mapping of names to tensors)")
    return strip_module_prefix(obj)


def detect_audio_layout(state_dict: StateDict) -> str:
    """'pretrain' (``models_mae``) or 'finetune' (``models_vit``), from the key names."""
    keys = set(state_dict)
    if any(key.startswith(("decoder_blocks.", "decoder_embed.")) for key in keys):
        return "pretrain"
    if any(key.startswith(("fc_norm.", "head.")) for key in keys) and "cls_token" in keys:
        return "finetune"
    raise ValueError(f"not an official Audio-MAE checkpoint: no decoder_blocks (pre-training) or fc_norm/head "
                     f"(fine-tuning) keys; first keys: {sorted(keys)[:5]}")


def convert_audio_checkpoint(obj: object, layout: str = "auto") -> tuple[StateDict, str]:
    """(maekit state dict, the layout it came in): ``audio_mae`` keys for a pre-training checkpoint,
    ``audio_classifier`` keys for a fine-tuned one. A key the layout does not have is an error."""
    state = unwrap_checkpoint(obj)
    layout = detect_audio_layout(state) if layout == "auto" else layout
    if layout == "pretrain":
        return rename_keys(state, PRETRAIN_RULES, "Audio-MAE pre-training (models_mae)"), layout
    if layout == "finetune":
        return rename_keys(state, FINETUNE_RULES, "Audio-MAE fine-tuning (models_vit)"), layout
    raise ValueError(f"layout must be 'auto', 'pretrain' or 'finetune', got {layout!r}")
