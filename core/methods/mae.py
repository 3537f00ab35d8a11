"""The reference method: MAE (He et al., 2022), with the size presets of the paper."""
from __future__ import annotations

from typing import Any

from maekit.model import MaskedAutoencoder
from maekit.nn.patchify import as_pair

__all__ = ["MAE_PRESETS", "mae", "encoder_name_for", "build_vit_encoder"]

# Encoder sizes of the paper (ViT-B/L/H) and the common smaller ViTs, as timm names.
MAE_PRESETS: dict[str, str] = {
    "tiny": "vit_tiny_patch16_224",
    "small": "vit_small_patch16_224",
    "base": "vit_base_patch16_224",
    "large": "vit_large_patch16_224",
    "huge": "vit_huge_patch14_224",
}


def mae(size: str | None = "base", img_size: int | tuple[int, int] = 224, patch_size: int | None = None,
        in_chans: int = 3, mask_ratio: float = 0.75, norm_pix_loss: bool = True, encoder_name: str | None = None,
        encoder: dict[str, Any] | None = None, decoder_embed_dim: int = 512, decoder_depth: int = 8,
        decoder_num_heads: int = 16, mlp_ratio: float = 4.0, masking: str = "random_mask",
        loss: str = "masked_mse", drop_path_rate: float = 0.0) -> MaskedAutoencoder:
    """MAE with a timm ViT encoder; the paper's recipe by default (mask 0.75, norm-pix target,
    512-wide 8-block decoder).

    ``size`` picks a preset (tiny, small, base, large, huge) or pass ``encoder_name`` (any timm
    ViT) and free sizes in ``encoder`` (``embed_dim``, ``depth``, ``num_heads``, ...).
    """
    encoder_module = build_vit_encoder(size, encoder_name, img_size, patch_size, in_chans, encoder, drop_path_rate)
    p, q = encoder_module.patch_size
    grid = tuple(s // k for s, k in zip(as_pair(img_size, "img_size"), (p, q)))
    return MaskedAutoencoder(
        patchifier=dict(type="image_patches", patch_size=(p, q), in_chans=in_chans),
        masker=dict(type=masking, mask_ratio=mask_ratio),
        encoder=encoder_module,
        decoder=dict(type="mae_decoder", encoder_dim=encoder_module.embed_dim, out_dim=p * q * in_chans,
                     grid_size=grid, embed_dim=decoder_embed_dim, depth=decoder_depth,
                     num_heads=decoder_num_heads, mlp_ratio=mlp_ratio),
        target=dict(type="norm_pixels" if norm_pix_loss else "pixels"),
        loss=dict(type=loss),
    )


def build_vit_encoder(size: str | None, encoder_name: str | None, img_size: Any, patch_size: int | None, in_chans: int,
                      overrides: dict[str, Any] | None = None, drop_path_rate: float | None = None,
                      method: str = "mae") -> Any:
    """A ``vit_encoder`` at a size preset (:data:`MAE_PRESETS`) or a timm ``encoder_name``, with
    free ``overrides`` (``embed_dim``, ``depth``, ``num_heads``, ...); ``method`` names the caller
    in a bad size's error. Every MAE-family method builds its encoder here."""
    from maekit.registry import build

    spec = dict(type="vit_encoder", model_name=encoder_name_for(size, encoder_name, method), img_size=img_size,
                patch_size=patch_size, in_chans=in_chans)
    if drop_path_rate is not None:
        spec["drop_path_rate"] = drop_path_rate
    return build("encoder", dict(**spec, **(overrides or {})))  # a key given twice is an error, not an override


def encoder_name_for(size: str | None, encoder_name: str | None = None, method: str = "mae") -> str:
    """The timm name of a size preset (:data:`MAE_PRESETS`), or ``encoder_name`` when given."""
    if encoder_name is not None:
        return encoder_name
    if size not in MAE_PRESETS:
        raise ValueError(f"{method} size must be one of {', '.join(MAE_PRESETS)} (or give encoder_name), got {size!r}")
    return MAE_PRESETS[size]
