"""MACRL (Yao, Desai, Palaniswami, "Masked Contrastive Representation Learning", arXiv 2211.06012).
No code was released. What the paper confirms: a siamese pair of encoder–decoder branches on two
views of an image; branch A masks more and sees the stronger augmentation, branch B masks less
and sees the weaker one; a contrastive loss on the encoders' features through a projector, with a
memory bank of negatives; an L1 reconstruction loss on each decoder's output.

Everything else is ours (each a setting of :func:`macrl`; the README lists them): both branches
share one encoder and one decoder; A masks 0.75, B 0.5 (independent random masks); the feature of
a branch is the mean of its visible patch latents (cls left out) → a 2-layer projector (D → 2048 →
256); InfoNCE τ 0.2 against the other branch's projection (no gradient through the key) and a
bank of 4096 past keys, averaged over both directions; L1 on the removed patches of raw pixels;
L = L1_A + L1_B + 1·L_con.

One pass, top to bottom: branch A (``views["strong"]`` at A's ratio) and branch B (``views["weak"]``
at B's) each run MAE's pass; the reconstruction terms are MAE's loss of each; the contrastive term
compares their projections.
"""
from __future__ import annotations

from typing import Any

import torch

from maekit.data.multiview import named_views
from maekit.methods.mae import build_vit_encoder
from maekit.model import MaskedAutoencoder, noise_for_views
from maekit.nn.base import NoiseSource
from maekit.nn.contrastive import InfoNCE, MLPProjector, symmetric_info_nce
from maekit.registry import build
from maekit.structures import ForwardPass

__all__ = ["MACRL", "macrl"]


class MACRL(MaskedAutoencoder):
    """Two masked branches (module docstring); ``masker`` is branch A's, ``weak_masker`` B's.
    Built by :func:`macrl`."""

    def __init__(self, weak_masker: Any, projector: MLPProjector, temperature: float = 0.2, queue: int = 4096,
                 contrastive_weight: float = 1.0, **parts: Any) -> None:
        super().__init__(**parts)
        self.weak_masker = build("masker", weak_masker)
        self.projector = projector
        self.contrastive = InfoNCE(temperature, gather="keys", queue=queue, dim=projector[-1].out_features)
        self.contrastive_weight = float(contrastive_weight)

    pretraining_only = ("projector.", "contrastive.")

    def projection(self, out: ForwardPass) -> torch.Tensor:
        """The projector of the mean of the branch's visible patch latents (cls left out)."""
        prefix = out.latents.shape[1] - out.mask.num_visible
        return self.projector(out.latents[:, prefix:].mean(dim=1))

    def forward(self, batch: Any, noise: NoiseSource = None) -> dict[str, torch.Tensor]:
        strong, weak = named_views(batch, ["strong", "weak"], "macrl")
        noise_a, noise_b = noise_for_views(noise, 2)  # independent masks for the two branches
        out_a = self.run_steps({**batch, "inputs": strong}, noise_a)
        out_b = self.run_steps({**batch, "inputs": weak}, noise_b, masker=self.weak_masker)
        reconstruction_a, reconstruction_b = self.compute_loss(out_a)["loss"], self.compute_loss(out_b)["loss"]
        z_a, z_b = self.projection(out_a), self.projection(out_b)
        contrast = symmetric_info_nce(self.contrastive, (z_a, z_a), (z_b, z_b))  # each branch's z: query and key
        contrastive = contrast["loss"] / 2  # the mean of the two directions
        total = reconstruction_a + reconstruction_b + self.contrastive_weight * contrastive
        return {"loss": total, "reconstruction_strong": reconstruction_a.detach(),
                "reconstruction_weak": reconstruction_b.detach(), "contrastive": contrastive.detach(),
                "contrastive_accuracy": contrast["accuracy"]}


def macrl(size: str | None = "base", img_size: Any = 224, patch_size: int | None = None, in_chans: int = 3,
          encoder_name: str | None = None, encoder: dict[str, Any] | None = None, strong_mask_ratio: float = 0.75,
          weak_mask_ratio: float = 0.5, norm_pix_loss: bool = False, decoder_embed_dim: int = 512, decoder_depth: int = 8,
          decoder_num_heads: int = 16, projector_hidden: int = 2048, projector_dim: int = 256, temperature: float = 0.2,
          queue: int = 4096, contrastive_weight: float = 1.0) -> MACRL:
    """MACRL with our settings for what the paper leaves open (module docstring); the decoder is
    MAE's (512-d × 8 blocks) unless set."""
    if not strong_mask_ratio > weak_mask_ratio:
        raise ValueError(f"macrl: branch A masks more than branch B (strong_mask_ratio > weak_mask_ratio), "
                         f"got {strong_mask_ratio} and {weak_mask_ratio}")
    vit = build_vit_encoder(size, encoder_name, img_size, patch_size, in_chans, encoder, method="macrl")
    p, q = vit.patch_size
    return MACRL(
        patchifier=dict(type="image_patches", patch_size=(p, q), in_chans=in_chans),
        masker=dict(type="random_mask", mask_ratio=strong_mask_ratio),
        weak_masker=dict(type="random_mask", mask_ratio=weak_mask_ratio),
        encoder=vit,
        decoder=dict(type="mae_decoder", encoder_dim=vit.embed_dim, out_dim=p * q * in_chans, grid_size=vit.grid_size,
                     embed_dim=decoder_embed_dim, depth=decoder_depth, num_heads=decoder_num_heads),
        target=dict(type="norm_pixels" if norm_pix_loss else "pixels"),
        loss=dict(type="masked_l1", name="reconstruction"),
        projector=MLPProjector(vit.embed_dim, projector_hidden, projector_dim, layers=2, bias=True, last_bias=True),
        temperature=temperature, queue=queue, contrastive_weight=contrastive_weight,
    )
