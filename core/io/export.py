"""Export an MAE encoder as safetensors + a JSON config that timm loads."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maekit.io.checkpoint import save_state_dict, write_bytes
from maekit.io.convert import maekit_to_timm

__all__ = ["export_encoder", "timm_kwargs"]


def timm_kwargs(encoder: Any) -> dict:
    """The ``timm.create_model`` arguments that rebuild ``encoder``'s architecture."""
    blocks = encoder.blocks
    return {"img_size": list(encoder.grid_size[i] * encoder.patch_size[i] for i in range(2)),
            "patch_size": encoder.patch_size[0], "in_chans": encoder.in_chans, "embed_dim": encoder.embed_dim,
            "depth": len(blocks), "num_heads": blocks[0].attn.num_heads,
            "mlp_ratio": blocks[0].mlp.fc1.out_features / encoder.embed_dim}


def export_encoder(model: Any, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``model.safetensors`` (timm ViT keys) and ``config.json`` into ``out_dir``.

    Load with ``timm.create_model(cfg["architecture"], pretrained=True, num_classes=N,
    pretrained_cfg_overlay=dict(file=".../model.safetensors"), **cfg["model_args"])``.
    """
    encoder = model.encoder
    if not hasattr(encoder, "model_name"):
        raise ValueError(f"only timm ViT encoders export to timm; this model's encoder is {type(encoder).__name__}")
    out_dir = Path(out_dir)
    weights = save_state_dict(maekit_to_timm(model.state_dict()), out_dir / "model.safetensors",
                              metadata={"format": "pt", "architecture": encoder.model_name})
    config = {"architecture": encoder.model_name, "model_args": timm_kwargs(encoder), "num_classes": 0,
              "global_pool": "token", "exported_by": "maekit"}
    return weights, write_bytes(out_dir / "config.json", json.dumps(config, indent=2).encode())
