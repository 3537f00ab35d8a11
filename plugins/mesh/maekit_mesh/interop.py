"""The official MeshMAE pre-training checkpoint into ``mesh_mae``: liang3588/MeshMAE saves
``Mesh_mae.state_dict()`` bare (``checkpoints/<name>/loss-….pkl``) with keys ``to_patch_embedding.1``
(Linear 640 → 768), ``to_patch_embedding.2`` (LayerNorm), ``pos_embedding.{0,2}``, ``cls_token``,
``encoder_cls_token_pos``, ``blocks.*`` (timm), ``norm``, ``decoder_embed``, ``mask_token``,
``decoer_pos_embedding.{0,2}`` (sic), ``decoder_cls_token_pos``, ``decoder_blocks.*``,
``decoder_norm``, ``to_pointsnew`` (45 × 3) and ``to_features`` (640); its unused heads
(``to_points``, ``to_points_seg``, ``to_features_seg``) are dropped."""
from __future__ import annotations

import torch

from maekit.io.convert import rename_keys, strip_module_prefix

__all__ = ["meshmae_to_maekit", "RULES"]

_UNUSED_HEADS = r"to_points\.|to_points_seg\.|to_features_seg\."
RULES = [
    (r"to_patch_embedding\.1\.", "encoder.patch_embed.0."),
    (r"to_patch_embedding\.2\.", "encoder.patch_embed.1."),
    (r"pos_embedding\.", "encoder.pos_mlp."),
    (r"cls_token$", "encoder.cls_token"),
    (r"encoder_cls_token_pos$", "encoder.cls_pos"),
    (r"blocks\.", "encoder.blocks."),
    (r"norm\.", "encoder.norm."),
    (r"decoder_embed\.", "decoder.embed."),
    (r"mask_token$", "decoder.mask_token"),
    (r"decoer_pos_embedding\.", "decoder.pos_mlp."),
    (r"decoder_cls_token_pos$", "decoder.cls_pos"),
    (r"decoder_blocks\.", "decoder.blocks."),
    (r"decoder_norm\.", "decoder.norm."),
    (r"to_pointsnew\.", "decoder.to_vertices."),
    (r"to_features\.", "decoder.to_features."),
]


def meshmae_to_maekit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every key of MeshMAE's ``Mesh_mae`` state dict into ``mesh_mae``'s (a ``module.``
    prefix is stripped); a key of neither layout is an error naming it."""
    return rename_keys(strip_module_prefix(state_dict), RULES, "MeshMAE Mesh_mae", skip=_UNUSED_HEADS)
