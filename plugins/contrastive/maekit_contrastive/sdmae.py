"""SDMAE (Mao et al. 2022, "Masked autoencoders are effective solution to transformer data-hungry";
github.com/Talented-Q/SDMAE ``models_sdmae.py``): MAE for small datasets, as the reference code does.

One pass, top to bottom, for two views of one image (``views["first"]``: the unaugmented top-left
crop, ``views["second"]``: a random crop with flip and colour) under **one** random mask:
1. each view: MAE's pass (one shared encoder whose patch embedding stays at its random init,
   a 128-wide 1-block decoder by default) and its reconstruction loss (MSE on removed patches,
   raw pixels: the reference's ``norm_pix_loss`` is off by default);
2. each view: location prediction — Linear(D → D/2) → Linear(D/2 → N), no activation, on each
   visible latent (after the final norm); target = the one-hot of its original index; MSE averaged
   over every entry (the reference's ``nn.MSELoss()``, not a cross-entropy);
3. the contrastive head on the decoder's outputs — every position including cls, after the pixel
   Linear — 2 transformer blocks, the cls position → a 3-layer MLP; the online head adds a
   2-layer predictor; the key head is an EMA copy (m 0.999) of the blocks + MLP, its BatchNorm on
   batch statistics. MoCo v3's loss both ways, τ 1.0, × 2τ, negatives from the local batch.
L = rec₁ + rec₂ + loc₁ + loc₂ + 0.1·(InfoNCE(q₁, k₂) + InfoNCE(q₂, k₁)).

Odd in the reference, kept: the head reads the decoder's *pixel* predictions, so its width is the
pixel width p²·C (768 = D only by coincidence for ViT-B/16 on RGB); the location loss is an MSE
against one-hot rows of width N (so tiny per entry); the batch is fixed at 64 inside the
reference model (here it is whatever the loader gives).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from maekit.data.multiview import named_views
from maekit.methods.mae import build_vit_encoder
from maekit.model import MaskedAutoencoder, noise_for_views
from maekit.nn.base import NoiseSource
from maekit.nn.contrastive import InfoNCE, MLPProjector, symmetric_info_nce
from maekit.nn.encoder import make_blocks
from maekit.nn.teachers import ema_teacher
from maekit.ops import init_mae_weights
from maekit.structures import ForwardPass

__all__ = ["SDMAE", "DescriptorHead", "sdmae"]


class DescriptorHead(nn.Module):
    """The reference's ``ctr_model``: ``depth`` transformer blocks over the decoder's outputs
    (B×(1+N)×w), the first (cls) position → a 3-layer MLP w → mlp_dim → mlp_dim → w without biases,
    BN after each Linear, the last BN without affine (MoCo v3's ``_build_mlp``)."""

    def __init__(self, width: int, mlp_dim: int, depth: int = 2, num_heads: int = 12, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"sdmae contrastive head: its width {width} (the decoder's pixel output p²·C) is not "
                             f"divisible by contrastive_heads={num_heads}")
        self.blocks = make_blocks(width, depth, num_heads, mlp_ratio)
        self.head = MLPProjector(width, mlp_dim, width, layers=3, bias=False, last_bn=True, last_bn_affine=False)

    def forward(self, decoded: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(decoded)[:, 0])


class SDMAE(MaskedAutoencoder):
    """Two views, one mask, reconstruction + location + contrast (module docstring). Built by
    :func:`sdmae`."""

    def __init__(self, locator: nn.Module, descriptor: DescriptorHead, predictor: MLPProjector,
                 momentum: float | dict = 0.999, temperature: float = 1.0, contrastive_weight: float = 0.1,
                 location_weight: float = 1.0, frozen_patch_embed: bool = True, **parts: Any) -> None:
        super().__init__(**parts)
        self.locator, self.descriptor, self.predictor = locator, descriptor, predictor
        for head in (locator, descriptor, predictor):  # the reference's xavier init of every Linear
            head.apply(init_mae_weights)
        self.teacher_descriptor = ema_teacher(copy.deepcopy(descriptor), momentum, student="descriptor", batch_stats=True)
        # the reference copies the head into its key head, then initialize_weights() re-draws every
        # Linear of both: the key head starts from an independent init, not as a copy (kept)
        self.teacher_descriptor.module.apply(init_mae_weights)
        self.contrastive = InfoNCE(temperature, scale_2tau=True, gather="none")
        self.contrastive_weight, self.location_weight = float(contrastive_weight), float(location_weight)
        if frozen_patch_embed:  # the reference's stop_grad_conv1: the random patch projection stays
            self.encoder.patch_embed.requires_grad_(False)

    pretraining_only = ("locator.", "descriptor.", "predictor.", "teacher_descriptor.", "contrastive.")

    def location_loss(self, out: ForwardPass) -> torch.Tensor:
        """MSE between each visible latent's location logits (B×K×N) and the one-hot of its index."""
        prefix = out.latents.shape[1] - out.mask.num_visible
        logits = self.locator(out.latents[:, prefix:])
        return F.mse_loss(logits.float(), F.one_hot(out.mask.ids_keep, out.tokens.num_tokens).float())

    def view_pass(self, batch: dict[str, Any], view: torch.Tensor, noise: NoiseSource) -> tuple[ForwardPass, torch.Tensor]:
        """MAE's pass on one view and the decoder's outputs at every position, cls first."""
        out = self.run_steps({**batch, "inputs": view}, noise)
        decoder: Any = self.decoder
        return out, decoder.forward_with_prefix(out.latents, out.mask, out.tokens)

    def forward(self, batch: Any, noise: NoiseSource = None) -> dict[str, torch.Tensor]:
        first, second = named_views(batch, ["first", "second"], "sdmae")
        shared_mask = noise_for_views(noise, 1)[0]  # one draw: the same mask for both views
        out_1, decoded_1 = self.view_pass(batch, first, shared_mask)
        out_2, decoded_2 = self.view_pass(batch, second, shared_mask)
        reconstruction = self.compute_loss(out_1)["loss"] + self.compute_loss(out_2)["loss"]
        location = self.location_loss(out_1) + self.location_loss(out_2)
        queries = [self.predictor(self.descriptor(decoded)) for decoded in (decoded_1, decoded_2)]
        keys = [self.teacher_descriptor(decoded) for decoded in (decoded_1, decoded_2)]
        contrast = symmetric_info_nce(self.contrastive, (queries[0], keys[0]), (queries[1], keys[1]))
        total = reconstruction + self.location_weight * location + self.contrastive_weight * contrast["loss"]
        return {"loss": total, "reconstruction": reconstruction.detach(), "location": location.detach(),
                "contrastive": contrast["loss"].detach(), "contrastive_accuracy": contrast["accuracy"]}


def sdmae(size: str | None = "base", img_size: Any = 224, patch_size: int | None = None, in_chans: int = 3,
          encoder_name: str | None = None, encoder: dict[str, Any] | None = None, mask_ratio: float = 0.75,
          norm_pix_loss: bool = False, decoder_embed_dim: int = 128, decoder_depth: int = 1, decoder_num_heads: int = 16,
          contrastive_depth: int = 2, contrastive_heads: int | None = None, mlp_dim: int = 4096, momentum: float | dict = 0.999,
          temperature: float = 1.0, contrastive_weight: float = 0.1, location_weight: float = 1.0,
          frozen_patch_embed: bool = True) -> SDMAE:
    """SDMAE with the reference's ``sdmae_vit_base_patch16`` settings by default: decoder 128-d ×
    1 block × 16 heads (the model's name says 512d8b), contrastive head of 2 blocks (heads: the
    encoder's) and MLP dim 4096, EMA 0.999, τ 1, weight 0.1, mask 0.75, raw-pixel target, frozen
    random patch embedding."""
    vit = build_vit_encoder(size, encoder_name, img_size, patch_size, in_chans, encoder, method="sdmae")
    p, q = vit.patch_size
    grid, width, pixels = vit.grid_size, vit.embed_dim, p * q * in_chans
    heads = contrastive_heads or vit.blocks[0].attn.num_heads
    if pixels % heads:
        raise ValueError(f"sdmae: the contrastive head works at the decoder's pixel width p²·C = {pixels}, which "
                         f"{'contrastive_heads' if contrastive_heads else 'the encoder head count'} {heads} does not "
                         f"divide; set contrastive_heads to a divisor of {pixels}")
    descriptor = DescriptorHead(pixels, mlp_dim, contrastive_depth, heads)
    return SDMAE(
        patchifier=dict(type="image_patches", patch_size=(p, q), in_chans=in_chans),
        masker=dict(type="random_mask", mask_ratio=mask_ratio),
        encoder=vit,
        decoder=dict(type="mae_decoder", encoder_dim=width, out_dim=pixels, grid_size=grid, embed_dim=decoder_embed_dim,
                     depth=decoder_depth, num_heads=decoder_num_heads),
        target=dict(type="norm_pixels" if norm_pix_loss else "pixels"),
        loss=dict(type="masked_mse", name="reconstruction"),
        locator=nn.Sequential(nn.Linear(width, width // 2), nn.Linear(width // 2, grid[0] * grid[1])),
        descriptor=descriptor,
        predictor=MLPProjector(pixels, mlp_dim, pixels, layers=2, bias=False, last_bn=True, last_bn_affine=False),
        momentum=momentum, temperature=temperature, contrastive_weight=contrastive_weight,
        location_weight=location_weight, frozen_patch_embed=frozen_patch_embed,
    )
