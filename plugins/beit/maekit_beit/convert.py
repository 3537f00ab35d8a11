"""BEiT checkpoints between layouts: the official one (microsoft/unilm ``beit/``: pre-training
files ``{"model": {cls_token, mask_token, patch_embed.*, rel_pos_bias.*, blocks.N.{gamma_1, attn.qkv,
attn.q_bias, attn.v_bias, ...}, norm.*, lm_head.*}}``; fine-tuned ones with per-block tables),
maekit's (``encoder.*`` with timm's ViT block names, ``decoder.pred.*`` for ``lm_head``), timm's
``Beit`` (encoder only) and transformers' ``BeitForMaskedImageModeling``.

Official and maekit names differ only in layer scale (``gamma_1`` ↔ ``ls1.gamma``) and the head;
the relative position index the official files carry is recomputed, not read (checked equal).
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

from maekit.io.checkpoint import CheckpointError
from maekit.io.convert import rename_keys, strip_runner_prefix
from maekit_beit.encoder import relative_position_index

__all__ = ["unilm_to_maekit", "maekit_to_unilm", "maekit_to_timm_beit", "maekit_to_transformers", "convert_beit",
           "BEIT_LAYOUTS"]

StateDict = dict[str, torch.Tensor]
BEIT_LAYOUTS = ("unilm", "maekit", "timm", "transformers")

_UNILM_TO_MAEKIT = [
    (r"blocks\.(\d+)\.gamma_1$", r"encoder.blocks.\1.ls1.gamma"),
    (r"blocks\.(\d+)\.gamma_2$", r"encoder.blocks.\1.ls2.gamma"),
    (r"lm_head\.", "decoder.pred."),
    (r"(cls_token|mask_token|pos_embed)$", r"encoder.\1"),
    (r"(patch_embed|rel_pos_bias|blocks|norm)\.", r"encoder.\1."),
]
_MAEKIT_TO_UNILM = [
    (r"encoder\.blocks\.(\d+)\.ls1\.gamma$", r"blocks.\1.gamma_1"),
    (r"encoder\.blocks\.(\d+)\.ls2\.gamma$", r"blocks.\1.gamma_2"),
    (r"decoder\.pred\.", "lm_head."),
    (r"encoder\.", ""),
]
_INDEX = r".*relative_position_index$"


def check_indices(state: Mapping[str, torch.Tensor]) -> None:
    """The official files' relative position indices must be the ones maekit computes for their grid."""
    for key, value in state.items():
        if key.endswith("relative_position_index"):
            side = int(round((value.shape[0] - 1) ** 0.5))
            if side * side + 1 != value.shape[0] or not torch.equal(value.long(), relative_position_index((side, side))):
                raise CheckpointError(f"{key}: a relative position index of another layout than BEiT's "
                                      f"(class token first, (2h-1)(2w-1)+3 rows)")


def unilm_to_maekit(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Official BEiT keys → maekit ``beit`` keys (``{"model": ...}`` unwrapped first)."""
    state = dict(state_dict.get("model", state_dict))  # type: ignore[arg-type]
    check_indices(state)
    return rename_keys(state, _UNILM_TO_MAEKIT, "official BEiT (unilm)", skip=_INDEX)


def maekit_to_unilm(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """maekit ``beit`` keys → the official layout (without the recomputable indices)."""
    state = {k: v for k, v in strip_runner_prefix(dict(state_dict)).items() if k.startswith(("encoder.", "decoder."))}
    return rename_keys(state, _MAEKIT_TO_UNILM, "maekit beit")


def maekit_to_timm_beit(state_dict: Mapping[str, torch.Tensor], per_block: bool = False) -> StateDict:
    """The encoder in timm ``Beit`` keys (no mask token, no ``lm_head``). ``per_block``: the shared
    table copied into every block (``blocks.N.attn.relative_position_bias_table``), as BEiT's
    fine-tuning starts — load into ``Beit(use_rel_pos_bias=True)``; otherwise load into
    ``Beit(use_shared_rel_pos_bias=True)``."""
    unilm = maekit_to_unilm(state_dict)
    encoder = {k: v for k, v in unilm.items() if not k.startswith(("lm_head.", "mask_token"))}
    if per_block and "rel_pos_bias.relative_position_bias_table" in encoder:
        table = encoder.pop("rel_pos_bias.relative_position_bias_table")
        depth = 1 + max(int(m.group(1)) for k in encoder if (m := re.match(r"blocks\.(\d+)\.", k)))
        for block in range(depth):
            encoder[f"blocks.{block}.attn.relative_position_bias_table"] = table.clone()
    return encoder


_TRANSFORMERS_COMMON = [
    (r"encoder\.cls_token$", "beit.embeddings.cls_token"),
    (r"encoder\.mask_token$", "beit.embeddings.mask_token"),
    (r"encoder\.pos_embed$", "beit.embeddings.position_embeddings"),
    (r"encoder\.patch_embed\.proj\.", "beit.embeddings.patch_embeddings.projection."),
    (r"encoder\.norm\.", "layernorm."),
    (r"decoder\.pred\.", "lm_head."),
]
# transformers 4.x names (the hub's checkpoints and transformers' own unilm converter)
_TRANSFORMERS_4 = [
    (r"encoder\.rel_pos_bias\.", "beit.encoder.relative_position_bias."),
    (r"encoder\.blocks\.(\d+)\.norm1\.", r"beit.encoder.layer.\1.layernorm_before."),
    (r"encoder\.blocks\.(\d+)\.norm2\.", r"beit.encoder.layer.\1.layernorm_after."),
    (r"encoder\.blocks\.(\d+)\.attn\.q_bias$", r"beit.encoder.layer.\1.attention.attention.query.bias"),
    (r"encoder\.blocks\.(\d+)\.attn\.v_bias$", r"beit.encoder.layer.\1.attention.attention.value.bias"),
    (r"encoder\.blocks\.(\d+)\.attn\.relative_position_bias_table$",
     r"beit.encoder.layer.\1.attention.attention.relative_position_bias.relative_position_bias_table"),
    (r"encoder\.blocks\.(\d+)\.attn\.proj\.", r"beit.encoder.layer.\1.attention.output.dense."),
    (r"encoder\.blocks\.(\d+)\.ls1\.gamma$", r"beit.encoder.layer.\1.lambda_1"),
    (r"encoder\.blocks\.(\d+)\.ls2\.gamma$", r"beit.encoder.layer.\1.lambda_2"),
    (r"encoder\.blocks\.(\d+)\.mlp\.fc1\.", r"beit.encoder.layer.\1.intermediate.dense."),
    (r"encoder\.blocks\.(\d+)\.mlp\.fc2\.", r"beit.encoder.layer.\1.output.dense."),
] + _TRANSFORMERS_COMMON
# transformers 5.x module names
_TRANSFORMERS_5 = [
    (r"encoder\.rel_pos_bias\.", "beit.shared_position_bias."),
    (r"encoder\.blocks\.(\d+)\.norm1\.", r"beit.layers.\1.layernorm_before."),
    (r"encoder\.blocks\.(\d+)\.norm2\.", r"beit.layers.\1.layernorm_after."),
    (r"encoder\.blocks\.(\d+)\.attn\.q_bias$", r"beit.layers.\1.attention.q_proj.bias"),
    (r"encoder\.blocks\.(\d+)\.attn\.v_bias$", r"beit.layers.\1.attention.v_proj.bias"),
    (r"encoder\.blocks\.(\d+)\.attn\.relative_position_bias_table$",
     r"beit.layers.\1.relative_position_bias.relative_position_bias_table"),
    (r"encoder\.blocks\.(\d+)\.attn\.proj\.", r"beit.layers.\1.attention.o_proj."),
    (r"encoder\.blocks\.(\d+)\.ls1\.gamma$", r"beit.layers.\1.lambda_1"),
    (r"encoder\.blocks\.(\d+)\.ls2\.gamma$", r"beit.layers.\1.lambda_2"),
    (r"encoder\.blocks\.(\d+)\.mlp\.", r"beit.layers.\1.mlp."),
] + _TRANSFORMERS_COMMON
_QKV_4 = ("beit.encoder.layer.{}.attention.attention.", ("query.weight", "key.weight", "value.weight"))
_QKV_5 = ("beit.layers.{}.attention.", ("q_proj.weight", "k_proj.weight", "v_proj.weight"))


def maekit_to_transformers(state_dict: Mapping[str, torch.Tensor], names: int = 4) -> StateDict:
    """maekit ``beit`` keys → ``BeitForMaskedImageModeling`` keys, transformers' 4.x names (``names=4``:
    the hub's checkpoints, transformers' own ``convert_beit_unilm_to_pytorch``) or its 5.x module
    names (``names=5``): the fused qkv split into query/key/value, the key without bias; the final
    norm is the MIM model's ``layernorm``, so build it with ``use_mean_pooling=True``."""
    if names not in (4, 5):
        raise ValueError(f"transformers names are those of its major version 4 or 5, got {names!r}")
    rules, (qkv_prefix, qkv_names) = (_TRANSFORMERS_4, _QKV_4) if names == 4 else (_TRANSFORMERS_5, _QKV_5)
    state = {k: v for k, v in strip_runner_prefix(dict(state_dict)).items() if k.startswith(("encoder.", "decoder."))}
    out: StateDict = {}
    for key in list(state):
        match = re.match(r"encoder\.blocks\.(\d+)\.attn\.qkv\.weight$", key)
        if match:
            prefix = qkv_prefix.format(match.group(1))
            out.update({prefix + name: part for name, part in zip(qkv_names, state.pop(key).chunk(3, dim=0))})
    out.update(rename_keys(state, rules, "maekit beit"))
    return out


def convert_beit(state_dict: Mapping[str, torch.Tensor], source: str, target: str, per_block: bool = False) -> StateDict:
    """Between :data:`BEIT_LAYOUTS` through maekit's: source unilm or maekit; target any.
    ``per_block`` (timm only): the shared table copied into every block (see :func:`maekit_to_timm_beit`)."""
    if source not in ("unilm", "maekit"):
        raise ValueError(f"BEiT source layout must be unilm or maekit, got {source!r}")
    if target not in BEIT_LAYOUTS:
        raise ValueError(f"BEiT target layout must be one of {', '.join(BEIT_LAYOUTS)}, got {target!r}")
    if per_block and target != "timm":
        raise ValueError(f"per-block tables are timm's fine-tuning layout; they need target timm, not {target}")
    ours = unilm_to_maekit(state_dict) if source == "unilm" else strip_runner_prefix(dict(state_dict))
    if target == "timm":
        return maekit_to_timm_beit(ours, per_block=per_block)
    if target == "maekit":
        return ours
    return {"unilm": maekit_to_unilm, "transformers": maekit_to_transformers}[target](ours)
