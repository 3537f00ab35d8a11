"""DMAE (Bai et al., CVPR 2023, *Masked Autoencoders Enable Efficient Knowledge Distillers*;
reference code UCSC-VLAA/DMAE): an MAE student that also matches, at one intermediate block, the
features a frozen, larger MAE teacher makes of the same visible patches.

One pass, in core's order: patchify → random mask (75 %; the reference lets the teacher draw it,
with MAE's own rule, so the law is the same) → target: the pixels of the removed patches (no
norm-pix) → student encoder on the visible tokens, keeping block 9's output (the reference's
0-based index 8) → MAE decoder → masked MSE. Beside it, the teacher runs on the same visible
tokens (class token included) up to block 18 (0-based 17); the student's state goes through a
Linear to the teacher's width, both are L2-normalised per token, and their L1 distance (the mean
over class and visible tokens and channels) is added with weight 1.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from maekit.methods.mae import mae
from maekit.model import MaskedAutoencoder
from maekit.nn.teachers import Teacher, image_mae_teacher
from maekit.structures import ForwardPass

__all__ = ["DMAE", "dmae"]


class DMAE(MaskedAutoencoder):
    """MAE plus DMAE's feature alignment: ``student_tap`` (a block of the student, as
    ``forward_intermediates`` counts) is projected by ``projection`` and matched to the frozen
    ``teacher``'s ``teacher_tap`` on the same visible tokens (L1 between unit vectors, weight
    ``distill_weight``)."""

    pretraining_only = ("projection.",)  # the Linear to the teacher's width

    def __init__(self, *args: Any, teacher: Teacher, student_tap: int, teacher_tap: int, projection: nn.Module,
                 distill_weight: float = 1.0, **components: Any) -> None:
        super().__init__(*args, **components)
        encoder: Any = self.encoder  # a TokenEncoder: resolve_tap checks the index
        for name, module, tap in (("student_tap", encoder, student_tap), ("teacher_tap", teacher.module, teacher_tap)):
            try:
                module.resolve_tap(tap)
            except ValueError as error:
                raise ValueError(f"dmae {name}: {error}") from None
        self.teacher, self.projection = teacher, projection
        self.encoder_taps = (student_tap,)
        self.teacher_tap, self.distill_weight = teacher_tap, float(distill_weight)

    def auxiliary_losses(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        visible = out.tokens.take(out.mask.ids_keep)  # the student's input: the teacher sees the same
        teacher = self.teacher.features(visible, self.teacher_tap).float()  # B × (1 + V) × D_teacher
        student = self.projection(out.taps[self.encoder_taps[0]].float())
        value = F.l1_loss(F.normalize(student, dim=-1), F.normalize(teacher, dim=-1))
        return {"loss": self.distill_weight * value, "feature_l1": value}


def dmae(teacher: Mapping[str, Any], size: str | None = "base", img_size: int | tuple[int, int] = 224,
         patch_size: int | None = None, in_chans: int = 3, encoder_name: str | None = None,
         encoder: dict[str, Any] | None = None, mask_ratio: float = 0.75, decoder_embed_dim: int = 512,
         decoder_depth: int = 8, decoder_num_heads: int = 16, student_tap: int = 9, teacher_tap: int = 18,
         distill_weight: float = 1.0, norm_pix_loss: bool = False, drop_path_rate: float = 0.0) -> DMAE:
    """DMAE with the paper's defaults: a ViT-B student (decoder 8 × 512, mask 0.75, pixel target
    without norm-pix) aligned at block 9 to block 18 of a frozen MAE ViT-L teacher.
    ``teacher``: ``dict(checkpoint=<file>, layout="official"|"maekit", size="large" or
    encoder_name=..., encoder=dict(...))`` — the reference's ``mae_visualize_vit_large.pth`` in
    the MAE release's layout, or a maekit MAE run's checkpoint."""
    base = mae(size, img_size, patch_size, in_chans, mask_ratio, norm_pix_loss, encoder_name, encoder,
               decoder_embed_dim, decoder_depth, decoder_num_heads, drop_path_rate=drop_path_rate)
    student: Any = base.encoder
    frozen = image_mae_teacher({"size": "large", **teacher}, img_size, student.patch_size[0], in_chans, "dmae teacher")
    # the reference's 'fc-1layer' head, created after its weight init: PyTorch's default Linear init
    projection = nn.Linear(student.embed_dim, frozen.module.embed_dim)  # type: ignore[arg-type]
    return DMAE(patchifier=base.patchifier, masker=base.masker, encoder=base.encoder, decoder=base.decoder,
                target=base.target, loss=base.loss, teacher=frozen, student_tap=student_tap, teacher_tap=teacher_tap,
                projection=projection, distill_weight=distill_weight)
