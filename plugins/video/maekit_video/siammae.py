"""SiamMAE (Gupta et al., 2023): Siamese masked autoencoders on frame pairs.

No official code was released. The anchor is CropMAE's re-implementation
(alexandre-eymael/CropMAE, ``models/SiamMAE.py``); the choices made where the paper is silent
are listed in the plugin's README.

Two frames of one clip, the same crop and flip on both. One ViT (class token, MAE's fixed 2-D
table per frame, no time embedding) encodes the past frame whole and the future frame with 95 %
of its patches removed. The decoder's queries are the future frame's tokens (mask tokens in
the removed places, the decoder's table added). Its keys and values are every past-frame
latent through the decoder's input Linear, with no positions, as CropMAE's. The target is the
norm-pix of the removed future patches, MSE.

``architecture`` picks the paper's ablations:
- "cross_self" (the paper's): blocks of pre-norm cross-attention → self-attention → MLP;
- "cross": cross-attention → MLP (no self-attention);
- "joint": one encoder over the past frame and the future frame's visible patches together,
  and an MAE decoder over both frames (self-attention only).
"""
from __future__ import annotations

from typing import Any

import torch

from maekit.eval.visualize import PanelTitles, has_pixel_inverse
from maekit.methods.mae import encoder_name_for
from maekit.model import MaskedAutoencoder
from maekit.nn.base import NoiseSource
from maekit.nn.decoder import CrossAttentionDecoder, MAEDecoder
from maekit.nn.pos_embed import resample_grid_table
from maekit.ops import split_pair
from maekit.registry import build
from maekit.structures import ForwardPass, Mask, Tokens

__all__ = ["SIAMMAE_DECODERS", "SiamMAE", "FramePairDecoder", "siammae"]

#: decoder width, depth, heads per encoder size (CropMAE's siam_mae_vit_small / _base)
SIAMMAE_DECODERS: dict[str, tuple[int, int, int]] = {"small": (256, 4, 8), "base": (512, 8, 16)}
ARCHITECTURES = ("cross_self", "cross", "joint")


class FramePairDecoder(MAEDecoder):
    """The joint ablation's decoder: the MAE decoder over the tokens of several frames of one grid
    (past then future), each frame taking the same 2-D table (no time embedding)."""

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        grid = tuple(tokens.meta.get("grid_size", self.grid_size))
        table = resample_grid_table(self.pos_embed, self.grid_size, grid, self.num_prefix_tokens)
        frames = tokens.num_tokens // (grid[0] * grid[1])
        prefix, patches = table[:, : self.num_prefix_tokens], table[:, self.num_prefix_tokens:]
        return torch.cat([prefix, patches.repeat(1, frames, 1)], dim=1)


def concat_tokens(first: Tokens, second: Tokens) -> Tokens:
    """The tokens of two frames of one grid, one after the other (coordinates kept per frame)."""
    return Tokens(torch.cat([first.values, second.values], 1), torch.cat([first.coords, second.coords], 1),
                  dict(first.meta))


class SiamMAE(MaskedAutoencoder):
    """Past frame whole, future frame masked; a decoder that reads the past to predict the future.
    Inputs are frame pairs (B, C, 2, H, W) (``clip=dict(sampling="pair")`` and any video
    transform); single images (B, C, H, W) are what :meth:`encode` and propagation read."""

    def __init__(self, *args: Any, architecture: str = "cross_self", **components: Any) -> None:
        super().__init__(*args, **components)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"siammae architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
        self.architecture = architecture

    @staticmethod
    def frames(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The past and future frames (B, C, H, W) of a batch of frame pairs."""
        return split_pair(batch, 2, "siammae trains on frame pairs (B, C, 2, H, W) — a dataset with "
                                    "clip=dict(sampling='pair', ...) —")

    def run_steps(self, batch: Any, noise: NoiseSource = None) -> ForwardPass:
        past_frame, future_frame = self.frames(batch)
        past, future = self.tokenize(past_frame), self.tokenize(future_frame)
        mask = self.make_mask(future, noise)  # only the future frame loses patches
        target = self.make_target(future, batch, mask)
        if self.architecture == "joint":
            both = concat_tokens(past, future)
            both_mask = Mask.from_masked(torch.cat([torch.zeros_like(mask.masked), mask.masked], dim=1))
            latents = self.encoder(both.take(both_mask.ids_keep))
            pred = self.decoder(latents, both_mask, both)[:, past.num_tokens:]
        else:
            context = self.encoder(past)  # every past-frame patch, cls first
            latents = self.encoder(future.take(mask.ids_keep))
            pred = self.decoder(latents, mask, future, context=context)
        return ForwardPass(batch=batch, tokens=future, target=target, mask=mask, latents=latents, pred=pred)

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        """Per pair: past frame | future frame | masked future | prediction | prediction with the
        visible patches pasted back."""
        from maekit.data.samples import IMAGENET_MEAN, IMAGENET_STD
        from maekit.eval.visualize import reconstruction_panels, uint8_panels
        from maekit.model import seeded_noise

        self.eval()
        mean, std = mean or IMAGENET_MEAN, std or IMAGENET_STD
        out = self.run_steps(images, noise=seeded_noise(seed))
        past = self.frames(images)[0].float() * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
        rows = reconstruction_panels(self, out, mean, std)
        return [[panel, *row] for panel, row in zip(uint8_panels(past.clamp(0, 1)), rows)]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels` (the predictions only for a target that turns back into pixels)."""
        titles = ("past frame", "future frame", "future masked", "reconstruction", "reconstruction + visible")
        return PanelTitles(columns=titles if has_pixel_inverse(self.target) else titles[:3])


def siammae(size: str | None = "small", img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
            mask_ratio: float = 0.95, architecture: str = "cross_self", encoder: dict[str, Any] | None = None,
            encoder_name: str | None = None, decoder_embed_dim: int | None = None, decoder_depth: int | None = None,
            decoder_num_heads: int | None = None, block_order: tuple[str, ...] | None = None,
            norm_first: bool = True, drop_path_rate: float = 0.0) -> SiamMAE:
    """SiamMAE with a timm ViT (``size`` small or base, ``patch_size`` 16 or 8 as the paper's S/16
    and S/8; or ``encoder_name`` / free sizes in ``encoder``): random masking of the future frame
    at 0.95 (``int(N·0.05)`` kept: 9 of 196), decoder 256 × 4 × 8 heads (S) / 512 × 8 × 16 (B).
    ``block_order`` overrides the cross-self order, e.g. CropMAE's ("cross", "mlp", "self") with
    ``norm_first=False``: its post-norm ``TransformerDecoderLayer``'s order and norm placement, not
    its 2048-wide MLP or its dropout 0.1."""
    name = encoder_name_for(size, encoder_name, "siammae")
    enc = build("encoder", dict(type="vit_encoder", model_name=name, img_size=img_size, patch_size=patch_size,
                                in_chans=in_chans, drop_path_rate=drop_path_rate, **(encoder or {})))
    width, depth, heads = SIAMMAE_DECODERS.get(size or "", (None, None, None))
    width, depth, heads = decoder_embed_dim or width, decoder_depth or depth, decoder_num_heads or heads
    if width is None or depth is None or heads is None:
        raise ValueError("siammae with a size other than small/base needs decoder_embed_dim, decoder_depth and "
                         "decoder_num_heads")
    grid = (img_size // patch_size, img_size // patch_size)
    out_dim = patch_size * patch_size * in_chans
    if architecture == "joint":
        if block_order is not None or not norm_first:
            raise ValueError("siammae block_order / norm_first set the cross-attention decoder; the joint architecture "
                             "has a self-attention decoder")
        decoder: Any = FramePairDecoder(enc.embed_dim, out_dim, grid, width, depth, heads)
    else:
        if architecture == "cross" and block_order is not None and "self" in block_order:
            raise ValueError(f"siammae architecture 'cross' has no self-attention; block_order {tuple(block_order)} names it")
        order = block_order or (("cross", "self", "mlp") if architecture == "cross_self" else ("cross", "mlp"))
        decoder = CrossAttentionDecoder(enc.embed_dim, out_dim, grid, width, depth, heads, embed_context=True,
                                        block_order=tuple(order), norm_first=norm_first)
    return SiamMAE(patchifier=dict(type="image_patches", patch_size=patch_size, in_chans=in_chans),
                   masker=dict(type="random_mask", mask_ratio=mask_ratio), encoder=enc, decoder=decoder,
                   target=dict(type="norm_pixels"), loss=dict(type="masked_mse"), architecture=architecture)
