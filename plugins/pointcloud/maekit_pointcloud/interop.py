"""Official checkpoints into maekit's models: Point-MAE's pre-training checkpoint
(``{"base_model": state, ...}``, keys ``MAE_encoder.*``, ``MAE_decoder.*``, ``increase_dim.*``,
…, optionally ``module.``-prefixed) into ``point_mae``, and MAE3D's (a raw ``DataParallel`` state
dict: ``module.encoder.patch_embed.conv1.0.weight``, ``module.encoder.transformer.layers.0.0.net
.to_qkv.weight``, …) into ``mae3d``. Names and shapes are those of the reference code
(Pang-Yatian/Point-MAE ``models/Point_MAE.py``; Jinec98/MAE3D ``model.py``)."""
from __future__ import annotations

import torch

from maekit.io.convert import rename_keys, strip_module_prefix

__all__ = ["point_mae_to_maekit", "mae3d_to_maekit", "detect_point_layout", "convert_point_checkpoint", "unwrap_official"]

StateDict = dict[str, torch.Tensor]

_BLOCK = [  # timm-style block names (Point-MAE's and ours)
    (r"norm1\.", "norm1."), (r"norm2\.", "norm2."), (r"attn\.qkv\.", "attn.qkv."), (r"attn\.proj\.", "attn.proj."),
    (r"mlp\.fc1\.", "mlp.fc1."), (r"mlp\.fc2\.", "mlp.fc2."),
]
_MAE3D_LAYER = [  # MAE3D's PreNorm(SelfAttention) / PreNorm(FFN) pairs
    (r"0\.norm\.", "norm1."), (r"0\.net\.to_qkv\.", "attn.qkv."), (r"0\.net\.out\.0\.", "attn.proj."),
    (r"1\.norm\.", "norm2."), (r"1\.net\.net\.0\.", "mlp.fc1."), (r"1\.net\.net\.3\.", "mlp.fc2."),
]
POINT_MAE_RULES = [
    (r"MAE_encoder\.encoder\.", "encoder.patch_embed."),
    (r"MAE_encoder\.pos_embed\.", "encoder.pos_mlp."),
    *[(rf"MAE_encoder\.blocks\.blocks\.(\d+)\.{old}", rf"encoder.blocks.\1.{new}") for old, new in _BLOCK],
    (r"MAE_encoder\.norm\.", "encoder.norm."),
    (r"mask_token$", "decoder.mask_token"),
    (r"decoder_pos_embed\.", "decoder.pos_mlp."),
    *[(rf"MAE_decoder\.blocks\.(\d+)\.{old}", rf"decoder.blocks.\1.{new}") for old, new in _BLOCK],
    (r"MAE_decoder\.norm\.", "decoder.norm."),
    (r"increase_dim\.0\.", "decoder.pred."),
]
_EDGE = [(rf"conv{i + 1}\.0\.", f"edge_convs.{i}.0.") for i in range(4)] + \
        [(rf"bn{i + 1}\.", f"edge_convs.{i}.1.") for i in range(4)] + [(r"conv5\.0\.", "fuse.0."), (r"bn5\.", "fuse.1.")]
MAE3D_RULES = [
    *[(rf"encoder\.patch_embed\.{old}", f"encoder.patch_embed.{new}") for old, new in _EDGE],
    (r"encoder\.cls_token$", "encoder.cls_token"),
    (r"cls_token_encoder$", "encoder.cls_pos"),
    (r"pos_embed_encoder\.", "encoder.pos_mlp."),
    *[(rf"encoder\.transformer\.layers\.(\d+)\.{old}", rf"encoder.blocks.\1.{new}") for old, new in _MAE3D_LAYER],
    (r"decoder\.cls_token$", "decoder.cls_token"),
    (r"cls_token_decoder$", "decoder.cls_pos"),
    (r"pos_embed_decoder\.", "decoder.pos_mlp."),
    *[(rf"decoder\.transformer\.layers\.(\d+)\.{old}", rf"decoder.blocks.\1.{new}") for old, new in _MAE3D_LAYER],
    (r"encoder_to_decoder\.", "decoder.embed."),
    (r"token_init$", "decoder.mask_token"),
    (r"mlp_center\.", "decoder.mlp_center."),
    (r"mlp_folding\.", "decoder.mlp_folding."),
]
# MAE3D registers each EdgeConv BatchNorm twice (bnN and convN.1): the second name is a duplicate.
_MAE3D_DUPLICATES = r"encoder\.patch_embed\.conv\d\.1\."


def point_mae_to_maekit(state_dict: StateDict) -> StateDict:
    """Point-MAE's ``Point_MAE`` pre-training weights → ``point_mae``'s (the prediction conv's 1×1
    kernel becomes a Linear weight)."""
    converted = rename_keys(strip_module_prefix(state_dict), POINT_MAE_RULES, "Point-MAE pre-training")
    weight = converted.get("decoder.pred.weight")
    if weight is not None and weight.dim() == 3:
        converted["decoder.pred.weight"] = weight[..., 0]
    return converted


def mae3d_to_maekit(state_dict: StateDict) -> StateDict:
    """MAE3D's pre-training weights → ``mae3d``'s (``token_init`` becomes a 1×1×D mask token)."""
    converted = rename_keys(strip_module_prefix(state_dict), MAE3D_RULES, "MAE3D pre-training", _MAE3D_DUPLICATES)
    token = converted.get("decoder.mask_token")
    if token is not None:
        converted["decoder.mask_token"] = token.reshape(1, 1, -1)
    return converted


def unwrap_official(obj: object) -> StateDict:
    """The state dict in an official checkpoint: Point-MAE's ``{"base_model": ...}`` (or
    ``{"model": ...}``), MAE3D's bare state dict."""
    for key in ("base_model", "model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("does not hold a state dict (a mapping of names to tensors)")
    return obj


def detect_point_layout(state_dict: StateDict) -> str:
    """'point-mae', 'mae3d' or 'maekit', from the key names."""
    keys = set(strip_module_prefix(state_dict))
    if any(k.startswith(("MAE_encoder.", "MAE_decoder.")) for k in keys):
        return "point-mae"
    if any(k.startswith(("encoder.transformer.", "encoder_to_decoder.")) for k in keys) or "token_init" in keys:
        return "mae3d"
    if any(k.startswith(("encoder.patch_embed.", "encoder.blocks.")) for k in keys):
        return "maekit"
    raise ValueError(f"cannot tell the checkpoint layout from its keys (first keys: {sorted(keys)[:5]}); "
                     f"pass --from point-mae or --from mae3d")


_CONVERTERS = {"point-mae": point_mae_to_maekit, "mae3d": mae3d_to_maekit, "maekit": strip_module_prefix}


def convert_point_checkpoint(state_dict: StateDict, source: str = "auto") -> StateDict:
    """An official (or maekit) point-cloud checkpoint's state dict in maekit's layout."""
    source = detect_point_layout(state_dict) if source == "auto" else source
    if source not in _CONVERTERS:
        raise ValueError(f"source layout must be auto, point-mae, mae3d or maekit, got {source!r}")
    return _CONVERTERS[source](state_dict)
