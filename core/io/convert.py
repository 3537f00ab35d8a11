"""Convert MAE checkpoints between key layouts: the official facebookresearch/mae one, transformers'
``ViTMAEForPreTraining`` (both its 4.x and 5.x key names), maekit's, and timm's (encoder only).

maekit's ``mae`` keys are ``encoder.<timm ViT keys>`` and ``decoder.{embed, mask_token, pos_embed,
blocks, norm, pred}``; its blocks are timm blocks, so only transformers' separate q/k/v projections
need fusing into ``qkv``.
"""
from __future__ import annotations

import re
from typing import Callable

import torch

from maekit.io.checkpoint import CheckpointError

__all__ = ["LAYOUTS", "strip_runner_prefix", "detect_layout", "official_to_maekit", "maekit_to_official", "transformers_to_maekit",
           "maekit_to_transformers", "maekit_to_timm", "convert_state_dict", "resize_pos_embeds", "rename_keys", "strip_module_prefix",
           "drop_classifier_head"]

StateDict = dict[str, torch.Tensor]

# official name -> maekit name (decoder parts; the encoder parts only gain the "encoder." prefix)
_OFFICIAL_DECODER = {"mask_token": "decoder.mask_token", "decoder_pos_embed": "decoder.pos_embed",
                     "decoder_embed.": "decoder.embed.", "decoder_blocks.": "decoder.blocks.",
                     "decoder_norm.": "decoder.norm.", "decoder_pred.": "decoder.pred."}
_OFFICIAL_ENCODER = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.", "fc_norm.", "head.")


def _rename_prefix(key: str, table: dict[str, str]) -> str | None:
    for old, new in table.items():
        if key == old or (old.endswith(".") and key.startswith(old)):
            return new + key[len(old):]
    return None


def official_to_maekit(state_dict: StateDict) -> StateDict:
    """facebookresearch/mae ``models_mae`` keys → maekit ``mae`` keys."""
    out: StateDict = {}
    for key, value in state_dict.items():
        new = _rename_prefix(key, _OFFICIAL_DECODER)
        if new is None and key.startswith(_OFFICIAL_ENCODER):
            new = "encoder." + key
        if new is None:
            raise CheckpointError(f"unexpected key {key!r} for the official MAE layout")
        out[new] = value
    return out


def maekit_to_official(state_dict: StateDict) -> StateDict:
    """maekit ``mae`` keys → facebookresearch/mae ``models_mae`` keys (the inverse of the above)."""
    inverse = {new: old for old, new in _OFFICIAL_DECODER.items()}
    out: StateDict = {}
    for key, value in state_dict.items():
        new = _rename_prefix(key, inverse)
        if new is None and key.startswith("encoder."):
            new = key[len("encoder."):]
        if new is None:
            raise CheckpointError(f"unexpected key {key!r} for the maekit mae layout")
        out[new] = value
    return out


# transformers block internals (4.x names, then 5.x names) -> timm block names; q/k/v fused later
_HF_BLOCK = [
    (r"attention\.attention\.(query|key|value)\.", lambda m: f"attn.{m.group(1)[0]}."),
    (r"attention\.output\.dense\.", "attn.proj."),
    (r"attention\.([qkv])_proj\.", lambda m: f"attn.{m.group(1)}."),
    (r"attention\.o_proj\.", "attn.proj."),
    (r"intermediate\.dense\.", "mlp.fc1."),
    (r"output\.dense\.", "mlp.fc2."),
    (r"mlp\.(fc[12])\.", r"mlp.\1."),
    (r"layernorm_before\.", "norm1."),
    (r"layernorm_after\.", "norm2."),
]
_HF_OUTER = [
    (r"embeddings\.cls_token$", "encoder.cls_token"),
    (r"embeddings\.position_embeddings$", "encoder.pos_embed"),
    (r"embeddings\.patch_embeddings\.projection\.", "encoder.patch_embed.proj."),
    (r"(?:encoder\.layer|layers)\.(\d+)\.", r"encoder.blocks.\1."),
    (r"layernorm\.", "encoder.norm."),
    (r"decoder\.decoder_embed\.", "decoder.embed."),
    (r"decoder\.mask_token$", "decoder.mask_token"),
    (r"decoder\.decoder_pos_embed$", "decoder.pos_embed"),
    (r"decoder\.decoder_layers\.(\d+)\.", r"decoder.blocks.\1."),
    (r"decoder\.decoder_norm\.", "decoder.norm."),
    (r"decoder\.decoder_pred\.", "decoder.pred."),
]


def _apply_first(rules: list, text: str) -> tuple[str, str] | None:
    """(replaced prefix, rest) for the first rule matching at the start of ``text``."""
    for pattern, replacement in rules:
        match = re.match(pattern, text)
        if match:
            new = replacement(match) if callable(replacement) else match.expand(replacement)
            return new, text[match.end():]
    return None


def strip_module_prefix(state_dict: StateDict) -> StateDict:
    """A ``DataParallel`` / DDP state dict without its ``module.`` prefix."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def rename_keys(state_dict: StateDict, rules: list, layout: str, skip: str | None = None) -> StateDict:
    """Every key renamed by the first of ``rules`` (regex matched at the key's start → replacement,
    ``\\1`` groups allowed) that matches; keys matching ``skip`` are dropped. A key no rule knows
    is an error naming ``layout`` — a plugin's converter of its reference's checkpoints is a table."""
    out: StateDict = {}
    unknown = []
    for key, value in state_dict.items():
        if skip is not None and re.match(skip, key):
            continue
        renamed = _apply_first(rules, key)
        if renamed is None:
            unknown.append(key)
            continue
        new = renamed[0] + renamed[1]
        if new in out:
            raise CheckpointError(f"{layout} layout: two keys map to {new!r} (the second is {key!r})")
        out[new] = value
    if unknown:
        raise CheckpointError(f"{len(unknown)} keys are not part of the {layout} layout: {unknown[:5]}")
    return out


def transformers_to_maekit(state_dict: StateDict) -> StateDict:
    """transformers ``ViTMAEForPreTraining`` / ``ViTMAEModel`` keys → maekit ``mae`` keys."""
    renamed: StateDict = {}
    for key, value in state_dict.items():
        short = key[len("vit."):] if key.startswith("vit.") else key
        outer = _apply_first(_HF_OUTER, short)
        if outer is None:
            raise CheckpointError(f"unexpected key {key!r} for the transformers ViTMAE layout")
        prefix, rest = outer
        if ".blocks." in prefix:
            inner = _apply_first(_HF_BLOCK, rest)
            if inner is None:
                raise CheckpointError(f"unexpected block key {key!r} for the transformers ViTMAE layout")
            prefix, rest = prefix + inner[0], inner[1]
        renamed[prefix + rest] = value
    return _fuse_qkv(renamed)


def _fuse_qkv(state_dict: StateDict) -> StateDict:
    out: StateDict = {}
    for key, value in state_dict.items():
        match = re.match(r"(.*\.attn\.)([qkv])\.(weight|bias)$", key)
        if not match:
            out[key] = value
        elif match.group(2) == "q":
            head, param = match.group(1), match.group(3)
            try:
                parts = [state_dict[f"{head}{p}.{param}"] for p in "qkv"]
            except KeyError as missing:
                raise CheckpointError(f"attention weights incomplete: {missing} missing beside {key!r}") from None
            out[f"{head}qkv.{param}"] = torch.cat(parts, dim=0)
    return out


# maekit → transformers' 4.x ViTMAE names (the hub's checkpoints use them; 5.x loads them too)
_TO_HF_OUTER = [
    (r"encoder\.cls_token$", "vit.embeddings.cls_token"),
    (r"encoder\.pos_embed$", "vit.embeddings.position_embeddings"),
    (r"encoder\.patch_embed\.proj\.", "vit.embeddings.patch_embeddings.projection."),
    (r"encoder\.blocks\.(\d+)\.", r"vit.encoder.layer.\1."),
    (r"encoder\.norm\.", "vit.layernorm."),
    (r"decoder\.embed\.", "decoder.decoder_embed."),
    (r"decoder\.mask_token$", "decoder.mask_token"),
    (r"decoder\.pos_embed$", "decoder.decoder_pos_embed"),
    (r"decoder\.blocks\.(\d+)\.", r"decoder.decoder_layers.\1."),
    (r"decoder\.norm\.", "decoder.decoder_norm."),
    (r"decoder\.pred\.", "decoder.decoder_pred."),
]
_TO_HF_BLOCK = [
    (r"attn\.proj\.", "attention.output.dense."),
    (r"mlp\.fc1\.", "intermediate.dense."),
    (r"mlp\.fc2\.", "output.dense."),
    (r"norm1\.", "layernorm_before."),
    (r"norm2\.", "layernorm_after."),
]


def maekit_to_transformers(state_dict: StateDict) -> StateDict:
    """maekit ``mae`` keys → transformers ``ViTMAEForPreTraining`` keys (4.x names, which the hub's
    checkpoints carry and 5.x still loads), the fused ``qkv`` split into query, key and value."""
    out: StateDict = {}
    for key, value in strip_runner_prefix(state_dict).items():
        outer = _apply_first(_TO_HF_OUTER, key)
        if outer is None:
            raise CheckpointError(f"{key!r} has no place in transformers' ViTMAE (only mae's ViT encoder and MAE decoder do)")
        prefix, rest = outer
        if re.search(r"layers?\.\d+\.$", prefix):  # a block: fused qkv → three projections, the rest renamed
            qkv = re.match(r"attn\.qkv\.(weight|bias)$", rest)
            if qkv:
                for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{prefix}attention.attention.{name}.{qkv.group(1)}"] = part.clone()
                continue
            inner = _apply_first(_TO_HF_BLOCK, rest)
            if inner is None:
                raise CheckpointError(f"block key {key!r} has no place in transformers' ViTMAE layer")
            prefix, rest = prefix + inner[0], inner[1]
        out[prefix + rest] = value
    return out


def maekit_to_timm(state_dict: StateDict) -> StateDict:
    """The encoder of a maekit ``mae`` state dict, with timm ``VisionTransformer`` keys."""
    encoder = {k[len("encoder."):]: v for k, v in state_dict.items() if k.startswith("encoder.")}
    if not encoder:
        raise CheckpointError("no 'encoder.*' keys: not a maekit mae state dict")
    return encoder


def _identity(state_dict: StateDict) -> StateDict:
    return dict(state_dict)


def strip_runner_prefix(state_dict: StateDict) -> StateDict:
    """maekit training checkpoints wrap the method as ``model.*``; return the method's keys."""
    if state_dict and all(k.startswith("model.") for k in state_dict):
        return {k[len("model."):]: v for k, v in state_dict.items()}
    return state_dict


def detect_layout(state_dict: StateDict) -> str:
    """'maekit', 'official' or 'transformers', from the key names."""
    keys = set(strip_runner_prefix(state_dict))
    if any(k.startswith(("vit.", "embeddings.", "decoder.decoder_")) for k in keys):
        return "transformers"
    # maekit's own: component attributes (any encoder, e.g. a plugin's CNN, under "encoder.")
    if any(k.startswith(("encoder.", "decoder.")) for k in keys):
        return "maekit"
    if {"cls_token", "pos_embed"} <= keys or any(k.startswith(("blocks.", "decoder_blocks.")) for k in keys):
        return "official"
    raise CheckpointError("cannot tell the checkpoint layout from its keys (first keys: "
                          f"{sorted(keys)[:5]}); pass the source layout explicitly")


LAYOUTS = ("maekit", "official", "transformers", "timm")
_TO_MAEKIT: dict[str, Callable[[StateDict], StateDict]] = {
    "maekit": _identity, "official": official_to_maekit, "transformers": transformers_to_maekit}
_FROM_MAEKIT: dict[str, Callable[[StateDict], StateDict]] = {
    "maekit": _identity, "official": maekit_to_official, "timm": maekit_to_timm, "transformers": maekit_to_transformers}


def convert_state_dict(state_dict: StateDict, source: str = "auto", target: str = "maekit") -> StateDict:
    """Convert between layouts through maekit's: source in maekit/official/transformers (or auto),
    target in maekit/official/timm/transformers."""
    state_dict = strip_runner_prefix(state_dict)
    source = detect_layout(state_dict) if source == "auto" else source
    if source not in _TO_MAEKIT:
        raise ValueError(f"source layout must be auto or one of {', '.join(_TO_MAEKIT)}, got {source!r}")
    if target not in _FROM_MAEKIT:
        raise ValueError(f"target layout must be one of {', '.join(_FROM_MAEKIT)}, got {target!r}")
    return _FROM_MAEKIT[target](_TO_MAEKIT[source](state_dict))


def drop_classifier_head(state_dict: StateDict) -> tuple[StateDict, list[str]]:
    """A fine-tuned checkpoint (the official ``models_vit``: ``head.*``, ``fc_norm.*``, with or without
    ``norm.*``; maekit keys ``encoder.head.*`` ...) read as a pre-trained encoder: the head is dropped
    and, where the file has no final ``norm``, ``fc_norm`` takes its place (the fine-tuned model
    normalised the pooled feature with it; here it normalises each token before pooling — the
    nearest the encoder can come). Returns the state and one note per change, to tell the user."""
    out, notes = dict(state_dict), []
    head = sorted(k for k in out if k.startswith("encoder.head."))
    if head:
        classes = out[head[0]].shape[0] if out[head[0]].dim() else "?"
        notes.append(f"dropped the classification head ({', '.join(k[len('encoder.'):] for k in head)}: {classes} classes)")
        for key in head:
            del out[key]
    fc_norm = sorted(k for k in out if k.startswith("encoder.fc_norm."))
    if fc_norm:
        if any(k.startswith("encoder.norm.") for k in out):
            notes.append("dropped fc_norm (the file also has the encoder's final norm, which is used)")
            for key in fc_norm:
                del out[key]
        else:
            for key in fc_norm:
                out["encoder.norm." + key[len("encoder.fc_norm."):]] = out.pop(key)
            notes.append("used fc_norm as the encoder's final norm (the file has none: a global-pool fine-tune)")
    return out, notes


def resize_pos_embeds(state_dict: StateDict, model: torch.nn.Module, num_prefix_tokens: int = 1) -> StateDict:
    """Resample every square-grid ``*pos_embed`` whose length differs from ``model``'s (bicubic, as the
    reference ``interpolate_pos_embed``), so a checkpoint loads at another input size. A non-square
    one the model holds frozen (a fixed table it builds for its own grid) is left out: the model's
    own is kept."""
    from maekit.nn.pos_embed import resample_grid_table

    own = model.state_dict()
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    out = dict(state_dict)
    for key, table in state_dict.items():
        if not key.endswith("pos_embed") or key not in own or own[key].shape == table.shape:
            continue
        old_n, new_n = table.shape[1] - num_prefix_tokens, own[key].shape[1] - num_prefix_tokens
        old_side = int(round(old_n**0.5))
        if old_side * old_side != old_n:
            if key in frozen:  # a fixed table the model built for its own grid (Audio-MAE's 64×8 → 32×8)
                del out[key]
                continue
            raise CheckpointError(f"{key}: cannot resample a non-square table of {old_n} positions")
        new_grid = _grid_of(model, key, new_n)
        out[key] = resample_grid_table(table, (old_side, old_side), new_grid, num_prefix_tokens)
    return out


def _grid_of(model: torch.nn.Module, key: str, length: int) -> tuple[int, int]:
    owner = model.get_submodule(key.rpartition(".")[0]) if "." in key else model
    grid = getattr(owner, "grid_size", None)
    if grid is not None and grid[0] * grid[1] == length:
        return tuple(grid)
    side = int(round(length**0.5))
    if side * side != length:
        raise CheckpointError(f"{key}: the model's table of {length} positions is not a known grid")
    return side, side
