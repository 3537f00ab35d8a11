"""Export a trained MAE: its encoder as safetensors + a JSON config that timm loads, or the whole
model as a folder that transformers' ``ViTMAEForPreTraining.from_pretrained`` loads offline."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from maekit.io.checkpoint import save_state_dict, write_json
from maekit.io.convert import maekit_to_timm, maekit_to_transformers

__all__ = ["export_encoder", "export_transformers", "transformers_config", "timm_kwargs"]


def timm_kwargs(encoder: Any) -> dict:
    """The ``timm.create_model`` arguments that rebuild ``encoder``'s architecture."""
    blocks = encoder.blocks
    return {"img_size": list(encoder.grid_size[i] * encoder.patch_size[i] for i in range(2)),
            "patch_size": encoder.patch_size[0], "in_chans": encoder.in_chans, "embed_dim": encoder.embed_dim,
            "depth": len(blocks), "num_heads": blocks[0].attn.num_heads,
            "mlp_ratio": blocks[0].mlp.fc1.out_features / encoder.embed_dim}


def export_encoder(model: Any, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``model.safetensors`` (timm keys: a ViT's, or those of the family an encoder's own
    ``timm_export()`` names, e.g. BEiT's) and ``config.json`` into ``out_dir``.

    Load with ``timm.create_model(cfg["architecture"], pretrained=True, num_classes=N,
    pretrained_cfg_overlay=dict(file=".../model.safetensors"), **cfg["model_args"])``.
    """
    encoder = model.encoder
    out_dir = Path(out_dir)
    # an encoder of another timm family (a plugin's, e.g. BEiT's) says how it exports: its timm
    # state dict, the timm architecture and the arguments that rebuild it
    exporter = getattr(encoder, "timm_export", None)
    if exporter is not None:
        state, architecture, model_args = exporter()
    elif hasattr(encoder, "model_name"):
        state, architecture, model_args = maekit_to_timm(model.state_dict()), encoder.model_name, timm_kwargs(encoder)
    else:
        raise ValueError(f"only timm ViT encoders export to timm; this model's encoder is {type(encoder).__name__}")
    weights = save_state_dict(state, out_dir / "model.safetensors", metadata={"format": "pt", "architecture": architecture})
    config = {"architecture": architecture, "model_args": model_args, "num_classes": 0,
              "global_pool": "token", "exported_by": "maekit"}
    return weights, write_json(out_dir / "config.json", config)


def transformers_config(model: Any) -> dict:
    """transformers' ``ViTMAEConfig`` (as JSON) of an ``mae`` model: ViT encoder with a cls token
    and MAE's decoder; anything else is refused with what does not fit."""
    encoder: Any = getattr(model, "encoder", None)
    decoder: Any = getattr(model, "decoder", None)
    parts = ("patch_embed", "blocks", "norm", "cls_token")
    if not (hasattr(encoder, "model_name") and all(hasattr(encoder, p) for p in parts) and encoder.cls_token is not None
            and all(hasattr(decoder, p) for p in ("embed", "blocks", "norm", "pred", "mask_token", "pos_embed"))):
        raise ValueError(f"only mae models (a timm ViT encoder with a cls token and MAE's decoder) export to transformers' "
                         f"ViTMAE; this model is {type(model).__name__} with {type(encoder).__name__} / {type(decoder).__name__}")
    from maekit.nn.losses import MaskedMSELoss
    from maekit.nn.masking import RandomMasker
    from maekit.nn.targets import NormPixelTarget, PixelTarget

    # transformers' ViTMAE masks uniformly at random and regresses (normalised) pixels with MSE
    # on the removed patches: another masker, target or loss would not be the same model there
    steps = {"masker": (model.masker, (RandomMasker,)), "target": (model.target, (PixelTarget, NormPixelTarget)),
             "loss": (model.loss, (MaskedMSELoss,))}
    for step, (part, fits) in steps.items():
        if type(part) not in fits:
            raise ValueError(f"transformers' ViTMAE has no equivalent of this model's {step} {type(part).__name__} "
                             f"(it takes {' or '.join(f.__name__ for f in fits)})")
    if model.loss.reduction != "removed":
        raise ValueError(f"transformers' ViTMAE averages its loss over removed patches; this model's loss reduction "
                         f"is {model.loss.reduction!r}")
    block, decoder_block = encoder.blocks[0], decoder.blocks[0]
    # one layer_norm_eps and one qkv_bias serve both of ViTMAE's stacks: they must agree here
    if decoder.norm.eps != encoder.norm.eps or (block.attn.qkv.bias is None) != (decoder_block.attn.qkv.bias is None):
        raise ValueError(f"transformers' ViTMAE has one layer-norm eps and one qkv bias setting for encoder and decoder; "
                         f"this model's are eps {encoder.norm.eps} / {decoder.norm.eps}, qkv bias "
                         f"{block.attn.qkv.bias is not None} / {decoder_block.attn.qkv.bias is not None}")
    return {
        "architectures": ["ViTMAEForPreTraining"], "model_type": "vit_mae",
        "hidden_size": encoder.embed_dim, "num_hidden_layers": len(encoder.blocks),
        "num_attention_heads": block.attn.num_heads, "intermediate_size": block.mlp.fc1.out_features,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": encoder.norm.eps,
        # an int, as ViTMAEForPreTraining.unpatchify expects (square images only: see export_transformers)
        "image_size": encoder.grid_size[0] * encoder.patch_size[0],
        "patch_size": encoder.patch_size[0], "num_channels": encoder.in_chans, "qkv_bias": block.attn.qkv.bias is not None,
        "decoder_num_attention_heads": decoder_block.attn.num_heads, "decoder_hidden_size": decoder.embed.out_features,
        "decoder_num_hidden_layers": len(decoder.blocks), "decoder_intermediate_size": decoder_block.mlp.fc1.out_features,
        "mask_ratio": float(model.masker.mask_ratio), "norm_pix_loss": type(model.target) is NormPixelTarget,
        "exported_by": "maekit",
    }


def export_transformers(model: Any, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``config.json`` and ``model.safetensors`` (transformers' ViTMAE keys) into ``out_dir``:
    ``ViTMAEForPreTraining.from_pretrained(out_dir)`` (or ``ViTMAEModel``) loads it offline."""
    config = transformers_config(model)
    grid, patch = tuple(model.encoder.grid_size), tuple(model.encoder.patch_size)
    if grid[0] != grid[1] or patch[0] != patch[1]:  # its decoder builds a sin-cos table for a square grid
        raise ValueError(f"transformers' ViTMAE takes square images and patches; this model's are "
                         f"{[g * p for g, p in zip(grid, patch)]} pixels in patches of {list(patch)}")
    out_dir = Path(out_dir)
    weights = save_state_dict(maekit_to_transformers(model.state_dict()), out_dir / "model.safetensors",
                              metadata={"format": "pt"})
    return weights, write_json(out_dir / "config.json", config)
