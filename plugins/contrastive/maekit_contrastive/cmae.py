"""CMAE (Huang et al., TPAMI 2023; github.com/ZhichengHuang/CMAE): MAE plus a contrastive term
between an online and a momentum (EMA) branch.

One pass, top to bottom:
1. the online view (the unshifted top-left crop, ``batch["views"]["online"]``, read by name) goes
   through MAE: 2×2-block masking at 0.65, the encoder on the visible tokens, the pixel decoder,
   norm-pix MSE on the removed patches (the reference's ``loss_rc``);
2. the feature decoder (the MAE decoder's design, 2 blocks, output at the encoder width) decodes
   the same latents; its outputs over every patch position are mean-pooled → projector →
   predictor = the query;
3. the target view (shifted by 0–31 px and colour-augmented, ``views["target"]``) goes whole
   through the EMA encoder (cls included, before its final norm); the mean of its patch tokens
   (cls left out) → the EMA projector (BatchNorm on batch statistics, as the reference's
   train-mode target) = the key;
4. InfoNCE of query against keys (gathered over processes), τ 0.07, times 2τ, one direction
   (``loss_ct``). L = rc_weight·L_rc + ct_weight·L_ct.
The EMA encoder and projector start as copies of the online ones and follow them with momentum
0.996 after every optimiser step (mmengine's EMA hooks call 1 − 0.996 = 0.004 the momentum).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from maekit.data.multiview import named_views
from maekit.methods.mae import build_vit_encoder
from maekit.model import MaskedAutoencoder
from maekit.nn.contrastive import InfoNCE, MLPProjector
from maekit.nn.decoder import MAEDecoder
from maekit.nn.schedules import Schedule
from maekit.nn.teachers import ema_teacher
from maekit.structures import ForwardPass, Tokens

__all__ = ["CMAE", "cmae"]


class CMAE(MaskedAutoencoder):
    """MAE (the online branch) + feature decoder, projector, predictor, EMA encoder and projector,
    InfoNCE (module docstring). Built by :func:`cmae`."""

    def __init__(self, feature_decoder: MAEDecoder, projector: nn.Module, predictor: nn.Module,
                 momentum: float | Schedule | dict = 0.996, temperature: float = 0.07, ct_weight: float = 1.0,
                 rc_weight: float = 1.0, **parts: Any) -> None:
        super().__init__(**parts)
        self.feature_decoder, self.projector, self.predictor = feature_decoder, projector, predictor
        # the target branch starts as a copy of the online one (the reference's init_weights)
        self.teacher_encoder = ema_teacher(copy.deepcopy(self.encoder), momentum, student="encoder")
        self.teacher_projector = ema_teacher(copy.deepcopy(projector), momentum, student="projector", batch_stats=True)
        self.contrastive = InfoNCE(temperature, scale_2tau=True, gather="keys")
        self.ct_weight, self.rc_weight = float(ct_weight), float(rc_weight)

    pretraining_only = ("feature_decoder.", "projector.", "predictor.", "teacher_encoder.", "teacher_projector.",
                        "contrastive.")

    def tokenize(self, batch: Any) -> Tokens:
        """The online view's patches in training (read by name, whatever the views' order); a plain
        image batch's (probes, pictures, the target view) otherwise."""
        if isinstance(batch, dict) and "views" in batch:
            (online,) = named_views(batch, ["online"], "cmae")
            return self.patchifier(online)
        return self.patchifier(batch)

    def query(self, out: ForwardPass) -> torch.Tensor:
        """Predictor(projector(mean of the feature decoder's outputs over every patch position)), B×d."""
        features = self.feature_decoder(out.latents, out.mask, out.tokens)  # B×N×D, cls dropped
        return self.predictor(self.projector(features.mean(dim=1)))

    @torch.no_grad()
    def key(self, target_view: torch.Tensor) -> torch.Tensor:
        """EMA projector(mean of the EMA encoder's patch tokens, before its final norm), B×d."""
        tokens = self.tokenize(target_view)
        states = self.teacher_encoder.features(tokens, tap=-1)  # B×(1+N)×D, cls first
        return self.teacher_projector(states[:, self.teacher_encoder.num_prefix_tokens:].mean(dim=1))

    def compute_loss(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        terms = self.loss(out.pred, out.target, out.mask)
        return {**terms, "loss": self.rc_weight * terms["loss"]}

    def auxiliary_losses(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        (target_view,) = named_views(out.batch, ["target"], "cmae")
        contrast = self.contrastive(self.query(out), self.key(target_view))
        return {"loss": self.ct_weight * contrast["loss"], "contrastive": contrast["loss"].detach(),
                "contrastive_accuracy": contrast["accuracy"]}


def cmae(size: str | None = "base", img_size: Any = 224, patch_size: int | None = None, in_chans: int = 3,
         encoder_name: str | None = None, encoder: dict[str, Any] | None = None, mask_ratio: float = 0.65,
         mask_block: int = 2, norm_pix_loss: bool = True, decoder_embed_dim: int = 512, decoder_depth: int = 8,
         decoder_num_heads: int = 16, feature_decoder_depth: int = 2, projector_hidden: int | None = None,
         projector_dim: int = 256, momentum: float | dict = 0.996, temperature: float = 0.07, ct_weight: float = 1.0,
         rc_weight: float = 1.0, bn_eps: float = 1e-6, sync_bn: bool = False) -> CMAE:
    """CMAE with the reference's settings by default (``configs/pre-training/cmae``): ViT-B/16,
    pixel decoder 512-d × 8 blocks × 16 heads, feature decoder the same with 2 blocks and output at
    the encoder width, projector D → 2D → 256 and predictor 256 → 2D → 256 (mmselfsup's
    NonLinearNeck: bias on the first Linear, BN eps 1e-6, no last BN), 2×2 blocks at 0.65,
    norm-pix target, EMA momentum 0.996, τ 0.07, both loss weights 1. ``sync_bn``: the projector's,
    predictor's and EMA projector's BatchNorm synchronised across processes, as the reference's
    SyncBN (CUDA DDP; a single process runs it as plain BatchNorm)."""
    vit = build_vit_encoder(size, encoder_name, img_size, patch_size, in_chans, encoder, method="cmae")
    p, q = vit.patch_size
    grid, width = vit.grid_size, vit.embed_dim
    if grid[0] % mask_block or grid[1] % mask_block:
        raise ValueError(f"cmae: the {grid[0]}×{grid[1]} token grid (img_size {img_size}, patch {p}) does not divide into "
                         f"mask_block={mask_block} blocks")
    hidden = projector_hidden or 2 * width  # 1536 for ViT-B

    def mae_decoder(out_dim: int, depth: int) -> dict[str, Any]:
        return dict(type="mae_decoder", encoder_dim=width, out_dim=out_dim, grid_size=grid, embed_dim=decoder_embed_dim,
                    depth=depth, num_heads=decoder_num_heads)

    from maekit.registry import build

    projector = MLPProjector(width, hidden, projector_dim, layers=2, bias=True, last_bias=False, bn_eps=bn_eps)
    predictor = MLPProjector(projector_dim, hidden, projector_dim, layers=2, bias=True, last_bias=False, bn_eps=bn_eps)
    if sync_bn:
        projector, predictor = (nn.SyncBatchNorm.convert_sync_batchnorm(head) for head in (projector, predictor))
    return CMAE(
        patchifier=dict(type="image_patches", patch_size=(p, q), in_chans=in_chans),
        masker=dict(type="grid_block_mask", mask_ratio=mask_ratio, block=mask_block),
        encoder=vit,
        decoder=mae_decoder(p * q * in_chans, decoder_depth),
        target=dict(type="norm_pixels" if norm_pix_loss else "pixels"),
        loss=dict(type="masked_mse", name="reconstruction"),
        feature_decoder=build("decoder", mae_decoder(width, feature_decoder_depth)),
        projector=projector,
        predictor=predictor,
        momentum=momentum, temperature=temperature, ct_weight=ct_weight, rc_weight=rc_weight,
    )
