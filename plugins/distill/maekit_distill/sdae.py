"""SdAE (Chen et al., ECCV 2022, *SdAE: Self-distillated Masked Autoencoder*; reference code
AbrahamYabo/SdAE): an MAE student whose decoder predicts, for the removed tokens, what a teacher
encoder makes of them — the teacher started from its own random init and moved towards the
student's encoder once per epoch.

One pass, in core's order: patchify → random mask (75%) → target: the removed tokens in the
masker's order, split into 3 folds of 49, each fold (with its own cls token) through the teacher,
final norm, cls dropped, each token standardised → student encoder on the visible tokens → MAE
decoder (8 × 512) with a linear head to the encoder width → 1 − cosine between prediction and
target over the folds. At the end of each epoch: teacher ← m·teacher + (1 − m)·student encoder
(final norm and position table included), m cosine 0.96 → 0.99 over the epochs.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from maekit.methods.mae import encoder_name_for
from maekit.model import MaskedAutoencoder
from maekit.nn.base import Loss
from maekit.nn.decoder import MAEDecoder
from maekit.nn.encoder import ViTEncoder
from maekit.nn.masking import RandomMasker, masked_folds
from maekit.nn.patchify import ImagePatchifier
from maekit.nn.schedules import CosineSchedule
from maekit.nn.targets import FeatureTarget
from maekit.nn.teachers import Teacher
from maekit.ops import gather, init_trunc_normal_weights
from maekit.structures import Mask, Prediction

__all__ = ["FoldedCosineLoss", "sdae", "COS_DIMS"]

#: The axis SdAE's cosine is taken over, for (B·folds, tokens, channels) tensors: the reference
#: code's ``F.cosine_similarity(target, pred)`` uses its default dim=1, the TOKEN axis (a cosine
#: per channel across the fold's tokens); the paper reads as a cosine per token over the channels.
COS_DIMS = {"tokens": 1, "channels": 2}


class FoldedCosineLoss(Loss):
    """``1 − cos(target, prediction).mean()`` over the folds of removed tokens the target was made
    from (:func:`maekit.nn.masking.masked_folds`, the same ids as the feature target).
    ``cos_dim``: "tokens" (the reference code, default) or "channels" (the paper's reading)."""

    def __init__(self, num_folds: int = 3, fold_size: int | None = None, cos_dim: str = "tokens",
                 name: str = "cosine_loss") -> None:
        super().__init__()
        if cos_dim not in COS_DIMS:
            raise ValueError(f"sdae cos_dim must be one of {', '.join(COS_DIMS)}, got {cos_dim!r}")
        self.num_folds, self.fold_size, self.cos_dim, self.name = num_folds, fold_size, cos_dim, name

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError("FoldedCosineLoss compares one tensor per token")
        ids = masked_folds(mask, self.num_folds, self.fold_size)
        batch, folds, size = ids.shape

        def grouped(x: torch.Tensor) -> torch.Tensor:
            return gather(x.float(), ids.flatten(1)).reshape(batch * folds, size, -1)

        value = 1.0 - F.cosine_similarity(grouped(target), grouped(pred), dim=COS_DIMS[self.cos_dim]).mean()
        return {"loss": value, self.name: value}

    def extra_repr(self) -> str:
        return f"{self.num_folds} folds of {self.fold_size or 'all'}, cos over {self.cos_dim}"


def sdae(size: str | None = "base", img_size: int | tuple[int, int] = 224, patch_size: int | None = None,
         in_chans: int = 3, encoder_name: str | None = None, encoder: dict[str, Any] | None = None,
         mask_ratio: float = 0.75, num_folds: int = 3, fold_size: int | None = None, cos_dim: str = "tokens",
         decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16, epochs: int = 300,
         momentum: Any = None, drop_path_rate: float = 0.25) -> MaskedAutoencoder:
    """SdAE with the paper's defaults (ViT-B student with drop-path 0.25, 75% random mask, 3 folds of
    all removed tokens, decoder 8 × 512 → encoder width, teacher momentum cosine 0.96 → 0.99 over
    ``epochs``, updated once per epoch). ``momentum``: a number or schedule to replace the default."""
    name = encoder_name_for(size, encoder_name, "sdae")
    options = dict(img_size=img_size, patch_size=patch_size, in_chans=in_chans, **(encoder or {}))
    student = ViTEncoder(name, drop_path_rate=drop_path_rate, **options)
    # the teacher is a plain ViT of the same shape from its own random init (timm's truncated
    # normal, a learned-style position table), not a copy of the student
    teacher_encoder = ViTEncoder(name, fixed_pos_embed=False, **options)
    teacher_encoder.blocks.apply(init_trunc_normal_weights)
    teacher = Teacher(teacher_encoder, "ema", CosineSchedule(0.96, 0.99, epochs, by_epoch=True) if momentum is None else momentum,
                      update_every="epoch", student="encoder")
    (p, q), grid = student.patch_size, student.grid_size
    return MaskedAutoencoder(
        patchifier=ImagePatchifier((p, q), in_chans),
        masker=RandomMasker(mask_ratio),
        encoder=student,
        decoder=MAEDecoder(student.embed_dim, student.embed_dim, grid, decoder_embed_dim, decoder_depth, decoder_num_heads),
        target=FeatureTarget(teacher, tap="output", norm="standardize", feed="folds", num_folds=num_folds,
                             fold_size=fold_size),
        loss=FoldedCosineLoss(num_folds, fold_size, cos_dim),
    )
