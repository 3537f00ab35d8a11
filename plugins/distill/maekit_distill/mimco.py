"""MimCo (Zhou et al., ACM MM 2022, *MimCo: Masked Image Modeling Pre-training with Contrastive
Teacher*, arXiv 2209.03063). No code was released, and only the abstract could be read here:
a masked-image-modelling student learns from a frozen contrastive teacher (MoCo v3 ViT) through
two contrastive reconstruction losses, one per patch and one per image.

One pass, in core's order: patchify → random mask → target: the frozen teacher's output (after its
final norm) on the whole, unmasked image, its cls row first → student encoder on the visible
tokens → MAE decoder at the teacher's width, read at every position *and* its cls position →
:class:`ContrastiveReconstructionLoss`:
- patch level: each removed token's prediction against the teacher's tokens of the same image —
  the one at its own position is the positive, the image's other N − 1 tokens the negatives;
- image level: the decoder's cls output against the teacher's cls outputs of the batch (every
  process's, as MoCo v3), the same image's the positive.

Every setting below is ours (the README lists them): negatives, temperatures (0.2 both), weights
(1 both), mask 0.75, MAE's decoder, the teacher's cls output after its final norm as the image
embedding (MoCo v3's projection head is not read), no norm on the targets beyond the teacher's own.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch.nn import functional as F

from maekit.methods.mae import build_vit_encoder
from maekit.model import MaskedAutoencoder
from maekit.nn.base import Loss
from maekit.nn.contrastive import InfoNCE
from maekit.nn.targets import FeatureTarget
from maekit.nn.teachers import image_mae_teacher
from maekit.structures import Mask, Prediction, Tokens

__all__ = ["MimCo", "ContrastiveReconstructionLoss", "mimco"]


class ContrastiveReconstructionLoss(Loss):
    """MimCo's two terms over predictions and teacher features B×(1+N)×D (cls row first): the
    patch-level InfoNCE of every removed token against its image's N teacher tokens (τ
    ``patch_temperature``), averaged over removed tokens, and the image-level InfoNCE of the cls
    rows across the (gathered) batch (τ ``image_temperature``). Returns both and their weighted sum."""

    def __init__(self, patch_temperature: float = 0.2, image_temperature: float = 0.2, patch_weight: float = 1.0,
                 image_weight: float = 1.0) -> None:
        super().__init__()
        for name, value in (("patch_temperature", patch_temperature), ("image_temperature", image_temperature)):
            if not value > 0:
                raise ValueError(f"mimco {name} must be positive, got {value!r}")
        self.patch_temperature = float(patch_temperature)
        self.image = InfoNCE(image_temperature, gather="keys")
        self.patch_weight, self.image_weight = float(patch_weight), float(image_weight)

    def patch_term(self, pred: torch.Tensor, target: torch.Tensor, mask: Mask) -> torch.Tensor:
        """Row i of image b scores the image's N teacher tokens; its own position is the label."""
        query, keys = F.normalize(pred.float(), dim=-1), F.normalize(target.float(), dim=-1).detach()
        logits = query @ keys.transpose(1, 2) / self.patch_temperature  # B×N×N
        labels = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
        per_token = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view_as(labels)
        removed = mask.masked.to(per_token.dtype)
        return (per_token * removed).sum() / removed.sum().clamp(min=1)

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor) or pred.shape != target.shape:
            raise ValueError(f"mimco compares predictions and teacher features of one shape B×(1+N)×D, got "
                             f"{getattr(pred, 'shape', type(pred))} and {getattr(target, 'shape', type(target))}")
        prefix = pred.shape[1] - mask.masked.shape[1]
        if prefix < 1:
            raise ValueError("mimco's image-level term reads the cls row: the target needs FeatureTarget(keep_prefix=True) "
                             "and the prediction the decoder's forward_with_prefix (B×(1+N)×D)")
        patch = self.patch_term(pred[:, prefix:], target[:, prefix:], mask)
        image = self.image(pred[:, 0], target[:, 0])["loss"]
        return {"loss": self.patch_weight * patch + self.image_weight * image, "patch_contrast": patch.detach(),
                "image_contrast": image.detach()}


class MimCo(MaskedAutoencoder):
    """MAE's pass with a frozen teacher's tokens (cls first) as the target and a decoder read at its
    cls position too (module docstring). Built by :func:`mimco`."""

    def decode(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
               taps: dict[int, torch.Tensor] | None = None) -> Prediction:
        decoder: Any = self.decoder  # an MAEDecoder
        return decoder.forward_with_prefix(latents, mask, tokens)


def mimco(teacher: Mapping[str, Any], size: str | None = "small", img_size: int | tuple[int, int] = 224,
          patch_size: int | None = None, in_chans: int = 3, encoder_name: str | None = None,
          encoder: dict[str, Any] | None = None, mask_ratio: float = 0.75, decoder_embed_dim: int = 512,
          decoder_depth: int = 8, decoder_num_heads: int = 16, patch_temperature: float = 0.2,
          image_temperature: float = 0.2, patch_weight: float = 1.0, image_weight: float = 1.0,
          drop_path_rate: float = 0.0) -> MimCo:
    """MimCo with the paper's pairing (a ViT-S student, a MoCo v3 ViT-S teacher) and our settings
    for the rest (module docstring). ``teacher``: ``dict(checkpoint=<file>, layout="mocov3" |
    "official" | "maekit", size=... or encoder_name=..., encoder=dict(...))`` — MoCo v3's
    ``vit-s-300ep.pth.tar`` (``module.base_encoder.*``; its projection head is not read; its ViT-S
    has 12 heads, which core's loader sets for ``size="small"``) by default."""
    student: Any = build_vit_encoder(size, encoder_name, img_size, patch_size, in_chans, encoder, drop_path_rate, "mimco")
    p, q = student.patch_size
    frozen = image_mae_teacher({"size": "small", "layout": "mocov3", **teacher}, img_size, p, in_chans, "mimco teacher")
    width = int(frozen.module.embed_dim)  # type: ignore[arg-type]
    return MimCo(patchifier=dict(type="image_patches", patch_size=(p, q), in_chans=in_chans),
                 masker=dict(type="random_mask", mask_ratio=mask_ratio), encoder=student,
                 decoder=dict(type="mae_decoder", encoder_dim=student.embed_dim, out_dim=width, grid_size=student.grid_size,
                              embed_dim=decoder_embed_dim, depth=decoder_depth, num_heads=decoder_num_heads),
                 target=FeatureTarget(frozen, tap="output", keep_prefix=True),
                 loss=ContrastiveReconstructionLoss(patch_temperature, image_temperature, patch_weight, image_weight))
