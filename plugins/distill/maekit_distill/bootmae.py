"""BootMAE (Dong et al., ECCV 2022, *Bootstrapped Masked Autoencoders for Vision BERT Pretraining*;
reference code LightDXY/BootMAE): MAE's pixel branch plus a feature branch that predicts what an
EMA copy of the encoder makes of the whole image; both decoders read an encoder state through
cross-attention ("encoder-to-decoder feature injection").

One pass, in core's order: patchify → block-plus-random mask (exactly 147 of 196 removed) →
targets (per-patch-and-channel normalised pixels; the EMA encoder's last block on the full image,
before its final norm, LayerNorm'ed without affine) → encoder on the visible tokens, keeping block
1's and the last block's states → pixel decoder (context: block 1) and feature decoder (context:
the last block) → centre-weighted MSE per branch, the feature term's weight ramped up over the
first quarter of training. The EMA momentum goes 0.999 → 0.9999 (epochs 0–100) → 0.99999 (next
300), per epoch; the teacher is updated after every optimiser step.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from maekit.methods.mae import encoder_name_for
from maekit.model import MaskedAutoencoder
from maekit.nn.base import Decoder
from maekit.nn.decoder import CrossAttentionDecoder
from maekit.nn.encoder import ViTEncoder
from maekit.nn.losses import MaskedMSELoss, NamedLosses
from maekit.nn.masking import BlockPlusRandomMasker
from maekit.nn.patchify import ImagePatchifier, as_pair
from maekit.nn.pos_embed import mocov3_sincos_2d_table
from maekit.nn.schedules import PiecewiseSchedule
from maekit.nn.targets import FeatureTarget, NamedTargets, NormPixelTarget, normalize_features
from maekit.nn.teachers import Teacher
from maekit.structures import Mask, Tokens

__all__ = ["BootMAE", "BootMAEEncoder", "BootMAEDecoders", "CentreWeightedMSELoss", "bootmae", "bootmae_momentum",
           "feature_weight_ramp"]


def xavier_per_projection(module: nn.Module) -> None:
    """The reference's init of fused q/k/v weights: xavier-uniform with the bound of one of the
    three projections, √(6 / (D_out/3 + D_in)) (MAE's treats the fused matrix as one)."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear) and name.endswith("qkv"):
            bound = math.sqrt(6.0 / (sub.weight.shape[0] // 3 + sub.weight.shape[1]))
            nn.init.uniform_(sub.weight, -bound, bound)


class BootMAEEncoder(ViTEncoder):
    """The reference MAE encoder with BootMAE's fixed table (MoCo v3's sin-cos layout: rows first)
    and init (per-projection q/k/v bound, cls token N(0, 1e-6))."""

    def fixed_table(self, grid_size: tuple[int, int]) -> torch.Tensor:
        return mocov3_sincos_2d_table(grid_size, self.embed_dim)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        xavier_per_projection(self.blocks)
        nn.init.normal_(self.cls_token, std=1e-6)


class BootMAEDecoders(Decoder):
    """The two decoders: ``pixels`` (``pixel_dim`` wide, mask tokens with the MoCo-v3 table, context
    = the state at ``pixel_tap``, linear head to the patch's values) and ``features`` (as wide as the
    encoder, context = the state at ``feature_tap``, linear head to the encoder width, its output
    LayerNorm'ed without affine as the loss compares it). Returns ``{"pixels", "features"}``."""

    def __init__(self, encoder_dim: int, patch_values: int, grid_size: tuple[int, int], num_heads: int,
                 pixel_dim: int = 512, depth: int = 2, mlp_ratio: float = 4.0, pixel_tap: int = 1,
                 feature_tap: int = -1) -> None:
        super().__init__()
        self.pixel_tap, self.feature_tap = pixel_tap, feature_tap
        common = dict(grid_size=grid_size, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                      context_dim=encoder_dim, positions="removed")
        # the reference's heads are dim // num_heads wide even when that leaves part of the width
        # (512 / 12 → 42, attention 504 wide)
        self.pixels = CrossAttentionDecoder(encoder_dim, patch_values, embed_dim=pixel_dim, context_tap=pixel_tap,
                                            head_dim=pixel_dim // num_heads,
                                            table=mocov3_sincos_2d_table(grid_size, pixel_dim), **common)
        self.features = CrossAttentionDecoder(encoder_dim, encoder_dim, embed_dim=encoder_dim, context_tap=feature_tap,
                                              head_dim=encoder_dim // num_heads,
                                              table=mocov3_sincos_2d_table(grid_size, encoder_dim), **common)
        for decoder in (self.pixels, self.features):
            xavier_per_projection(decoder)
            # the reference's trunc_normal_ wrapper cuts at ±1 std (a=-std, b=std)
            nn.init.trunc_normal_(decoder.mask_token, std=0.02, a=-0.02, b=0.02)
        # the reference's pixel head is a ConvTranspose2d left at PyTorch's default init: uniform
        # ±1/√fan_in with fan_in = its outputs per patch; the same numbers for our Linear
        bound = 1.0 / math.sqrt(patch_values)
        nn.init.uniform_(self.pixels.pred.weight, -bound, bound)
        nn.init.uniform_(self.pixels.pred.bias, -bound, bound)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
                taps: dict[int, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        taps = taps or {}
        if self.pixel_tap not in taps or self.feature_tap not in taps:
            raise ValueError(f"BootMAE's decoders read encoder taps {self.pixel_tap} and {self.feature_tap}; "
                             f"got {sorted(taps)}")
        return {"pixels": self.pixels(latents, mask, tokens, taps[self.pixel_tap]),
                "features": normalize_features(self.features(latents, mask, tokens, taps[self.feature_tap]), "layernorm")}


class CentreWeightedMSELoss(MaskedMSELoss):
    """BootMAE's weighted MSE: removed tokens weigh 1 + the share of removed tokens in their 3×3
    neighbourhood (AvgPool2d(3, 1, padding=1), padding counted, as the reference), visible tokens
    0; the weighted sum is divided by the number of removed tokens (not by the weights), so a token
    inside a masked block counts up to twice."""

    def __init__(self, grid_size: int | tuple[int, int], name: str = "mse", weight: float = 1.0) -> None:
        super().__init__(name, weight)
        self.grid_size = as_pair(grid_size, "grid_size")

    def token_weights(self, mask: Mask) -> torch.Tensor:
        removed = mask.masked.float()
        grid = removed.reshape(-1, 1, *self.grid_size)
        neighbourhood = F.avg_pool2d(grid, 3, stride=1, padding=1, count_include_pad=True)
        return (grid * neighbourhood + grid).reshape(removed.shape)

    def normaliser(self, mask: Mask, weights: torch.Tensor) -> torch.Tensor:
        return mask.masked.float().sum().clamp_min(1.0)


class BootMAE(MaskedAutoencoder):
    """MAE's pass with encoder taps for the decoders (:attr:`encoder_taps`) and two named parts
    (``pixels``, ``features``); the EMA teacher sits in the feature target."""

    def __init__(self, encoder_taps: tuple[int, ...], **components: Any) -> None:
        super().__init__(**components)
        self.encoder_taps = tuple(encoder_taps)

    def decode(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
               taps: dict[int, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        return self.decoder(latents, mask, tokens, taps)

    @property
    def teacher(self) -> Teacher:
        return self.target.parts["features"].teacher  # type: ignore[index,union-attr,return-value]


def bootmae_momentum(start: float = 0.999) -> PiecewiseSchedule:
    """The reference's ``adjust_ema_momentum`` with ``--model_ema_dynamic``: per epoch, ``start`` →
    0.9999 linearly over epochs 0–100, then → 0.99999 over the next 300, then constant."""
    return PiecewiseSchedule([(0, start), (100, 0.9999), (400, 0.99999)], by_epoch=True)


def feature_weight_ramp(epochs: int, weight: float = 1.0, fraction: float = 0.25) -> PiecewiseSchedule:
    """λ_e = min(λ·(e + 1)/(fraction·E), λ) per epoch: the reference's ``min(4λ(e+1)/E, λ)``."""
    if epochs < 1:
        raise ValueError(f"bootmae epochs must be at least 1, got {epochs}")
    return PiecewiseSchedule([(-1, 0.0), (fraction * epochs - 1, weight)], by_epoch=True)


def bootmae(size: str | None = "base", img_size: int | tuple[int, int] = 224, patch_size: int | None = None,
            in_chans: int = 3, encoder_name: str | None = None, encoder: dict[str, Any] | None = None,
            mask_ratio: float = 0.75, block_ratio: float = 120 / 196, min_block_ratio: float = 16 / 196,
            max_block_ratio: float = 60 / 196, max_roll: int = 3, decoder_dim: int = 512, decoder_depth: int = 2,
            decoder_num_heads: int | None = None, epochs: int = 800, feature_weight: float = 1.0,
            ramp_fraction: float = 0.25, momentum: Any = None, drop_path_rate: float = 0.0) -> BootMAE:
    """BootMAE with the paper's defaults (ViT-B, 147 of 196 removed, 2-block decoders 512 / encoder
    wide, taps block 1 and the last, momentum :func:`bootmae_momentum`, feature weight ramped to 1
    by 25% of ``epochs``). ``momentum``: a number or schedule to replace the default."""
    name = encoder_name_for(size, encoder_name, "bootmae")
    student = BootMAEEncoder(name, img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                             drop_path_rate=drop_path_rate, **(encoder or {}))
    grid, (p, q) = student.grid_size, student.patch_size
    heads = decoder_num_heads or student.blocks[0].attn.num_heads
    # the teacher starts as the student's copy (timm's ModelEma); it runs in eval mode (no drop-path)
    teacher = Teacher(copy.deepcopy(student), "ema", bootmae_momentum() if momentum is None else momentum,
                      update_every="iter", student="encoder")
    depth = len(student.blocks)
    return BootMAE(
        encoder_taps=(1, depth),
        patchifier=ImagePatchifier((p, q), in_chans),
        masker=BlockPlusRandomMasker(mask_ratio, block_ratio, min_block_ratio, max_block_ratio, max_roll=max_roll),
        encoder=student,
        decoder=BootMAEDecoders(student.embed_dim, p * q * in_chans, grid, heads, decoder_dim, decoder_depth,
                                pixel_tap=1, feature_tap=depth),
        target=NamedTargets({"pixels": NormPixelTarget(eps=1e-5, unbiased=False, per_channel=True),
                             "features": FeatureTarget(teacher, tap=-1, norm="layernorm", feed="full")},
                            picture="pixels"),
        loss=NamedLosses({"pixels": CentreWeightedMSELoss(grid, name="pixel_loss"),
                          "features": CentreWeightedMSELoss(grid, name="feature_loss")},
                         weights={"features": feature_weight_ramp(epochs, feature_weight, ramp_fraction)}),
    )
