"""FLIP: CLIP whose image tower sees only a random subset of the patches."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskedAutoencoder, seeded_noise
from maekit.nn.patchify import as_pair
from maekit.registry import build
from maekit.structures import ForwardPass

__all__ = ["FLIP", "flip"]


class FLIP(MaskedAutoencoder):
    """Core's pass with FLIP's pieces in its six slots: patchify → random mask (MAE's per-sample
    noise argsort) → image ViT over the visible patches only (+ cls) → ``decoder`` = pooled
    projection to a unit image embedding; ``target`` = the text tower's unit caption embedding;
    ``loss`` = symmetric InfoNCE with the learnable temperature.

    ``auxiliary_losses`` adds one optional term, the paper's reconstruction ablation (off by
    default): an MAE decoder from the same visible latents, masked MSE on (normalised) pixels.
    """

    def __init__(self, patchifier: Any, masker: Any, encoder: Any, decoder: Any, target: Any, loss: Any,
                 pixel_decoder: Any = None, pixel_target: Any = None, pixel_loss: Any = None) -> None:
        super().__init__(patchifier, masker, encoder, decoder, target, loss)
        if (pixel_decoder is None) != (pixel_loss is None) or (pixel_decoder is None) != (pixel_target is None):
            raise ValueError("FLIP's reconstruction term needs pixel_decoder, pixel_target and pixel_loss together")
        self.pixel_decoder = build("decoder", pixel_decoder) if pixel_decoder is not None else None
        self.pixel_target = build("target", pixel_target) if pixel_target is not None else None
        self.pixel_loss = build("loss", pixel_loss) if pixel_loss is not None else None

    def auxiliary_losses(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        """The reconstruction ablation, when configured: MAE decoder on the visible latents,
        weighted masked MSE on (normalised) pixels."""
        if self.pixel_decoder is None or self.pixel_target is None or self.pixel_loss is None:
            return {}
        pixels = self.pixel_decoder(out.latents, out.mask, out.tokens)
        return self.pixel_loss(pixels, self.pixel_target(out.tokens, out.batch), out.mask)

    # -- the two towers for evaluation (no masking) -----------------------------------------
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings (B×E) from every patch."""
        tokens = self.tokenize(images)
        return self.decode(self.encoder(tokens), None, tokens)

    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Unit caption embeddings (B×E) for token ids (B×context length)."""
        return self.target.encode(token_ids)

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """Input | what the image tower sees (removed patches grey), per image."""
        from maekit.eval.visualize import denormalised_panels

        self.eval()
        tokens = self.tokenize(images)
        removed = self.make_mask(tokens, seeded_noise(seed)).masked.unsqueeze(-1).expand_as(tokens.values)
        seen = self.patchifier.unpatchify(tokens.values, tokens.meta)
        grey = self.patchifier.unpatchify(removed, tokens.meta)
        return [list(row) for row in zip(denormalised_panels(seen, mean, std), denormalised_panels(seen, mean, std, grey))]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`: FLIP reconstructs nothing (unless as an ablation), so
        the picture is the input and what the image tower sees."""
        return PanelTitles(columns=("input", "masked (what the image tower sees)"))


def flip(encoder_name: str = "vit_base_patch16_clip_224", img_size: int | tuple[int, int] = 224,
         patch_size: int | None = None, in_chans: int = 3, encoder: dict[str, Any] | None = None,
         fixed_pos_embed: bool = True, pool: str = "mean", embed_dim: int = 512, mask_ratio: float = 0.5,
         text: dict[str, Any] | None = None, init_logit_scale: float = math.log(1 / 0.07),
         reconstruction: dict[str, Any] | None = None, drop_path_rate: float = 0.0) -> FLIP:
    """FLIP with a timm CLIP-style ViT image tower (pre-norm, LayerNorm eps 1e-5) and open_clip's
    text transformer. Defaults: the paper's ViT-B/16 (mask 0.5, sin-cos positions, mean-pooled
    image feature, 512-wide shared space, 12-block 512-wide text tower).

    ``text``: ``width``, ``depth``, ``num_heads``, ``context_length``, ``vocab_size``,
    ``mask_ratio``, ``mask_type``. ``reconstruction``: ``weight`` (1.0), ``norm_pix_loss`` (True),
    ``embed_dim``/``depth``/``num_heads`` of its MAE decoder (512/8/16). For open_clip weights use
    ``pool="cls", fixed_pos_embed=False`` (see ``maekit_flip.interop``).
    """
    text = dict(text or {})
    unknown = set(text) - {"width", "depth", "num_heads", "context_length", "vocab_size", "mask_ratio", "mask_type", "mlp_ratio"}
    if unknown:
        raise ValueError(f"flip text: unknown keys {sorted(unknown)}")
    image_encoder = build("encoder", dict(type="vit_encoder", model_name=encoder_name, img_size=img_size,
                                          patch_size=patch_size, in_chans=in_chans, fixed_pos_embed=fixed_pos_embed,
                                          drop_path_rate=drop_path_rate, **(encoder or {})))
    if isinstance(image_encoder.norm_pre, nn.Identity):
        raise ValueError(f"flip encoder {encoder_name!r} has no pre-norm: use a CLIP-style timm ViT "
                         f"(e.g. vit_base_patch16_clip_224) or pass encoder=dict(pre_norm=True)")
    p, q = image_encoder.patch_size
    pixel_parts: dict[str, Any] = {}
    if reconstruction is not None:
        reconstruction = dict(reconstruction)
        grid = tuple(s // k for s, k in zip(as_pair(img_size, "img_size"), (p, q)))
        pixel_parts = dict(
            pixel_decoder=dict(type="mae_decoder", encoder_dim=image_encoder.embed_dim, out_dim=p * q * in_chans,
                               grid_size=grid, embed_dim=reconstruction.pop("embed_dim", 512),
                               depth=reconstruction.pop("depth", 8), num_heads=reconstruction.pop("num_heads", 16)),
            pixel_target=dict(type="norm_pixels" if reconstruction.pop("norm_pix_loss", True) else "pixels"),
            pixel_loss=dict(type="masked_mse", name="loss_reconstruction", weight=reconstruction.pop("weight", 1.0)))
        if reconstruction:
            raise ValueError(f"flip reconstruction: unknown keys {sorted(reconstruction)}")
    return FLIP(
        patchifier=dict(type="image_patches", patch_size=(p, q), in_chans=in_chans),
        masker=dict(type="random_mask", mask_ratio=mask_ratio),
        encoder=image_encoder,
        decoder=dict(type="flip_image_projection", width=image_encoder.embed_dim, embed_dim=embed_dim, pool=pool),
        target=dict(type="flip_text_tower", embed_dim=embed_dim, **text),
        loss=dict(type="flip_contrastive_loss", init_logit_scale=init_logit_scale),
        **pixel_parts,
    )
