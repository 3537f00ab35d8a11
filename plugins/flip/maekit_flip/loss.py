"""FLIP's (CLIP's) symmetric InfoNCE with a learnable temperature."""
from __future__ import annotations

import math

import torch
from torch import nn

from maekit.nn.base import Loss
from maekit.nn.contrastive import (  # gather: every process's features, this one's with gradient
    gather_features,
    pair_contrastive_loss,
)
from maekit.structures import Mask

__all__ = ["ContrastiveLoss", "gather_features"]

MAX_LOGIT_SCALE = math.log(100.0)


class ContrastiveLoss(Loss):
    """Cross-entropy image→text and text→image over the (global) batch, averaged.

    ``logits = exp(logit_scale) · image @ text.T``; the learnable ``logit_scale`` starts at
    log(1/0.07) and is clamped to [0, log 100] where it is used (CLIP/FLIP; open_clip clamps the
    parameter after each step, the same scale in every forward). Inputs are unit vectors.
    Matching pairs are the diagonal: row i of the image batch goes with row i of the text batch.
    """

    def __init__(self, init_logit_scale: float = math.log(1 / 0.07)) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(0.0, MAX_LOGIT_SCALE).exp()

    def forward(self, image: torch.Tensor, text: torch.Tensor, mask: Mask | None = None) -> dict[str, torch.Tensor]:
        if image.shape != text.shape or image.dim() != 2:
            raise ValueError(f"contrastive loss expects image and text embeddings of one shape (B×D); "
                             f"got {tuple(image.shape)} and {tuple(text.shape)}")
        all_image, all_text = gather_features(image), gather_features(text)
        scale = self.scale()
        similarity = all_image @ all_text.t()
        # both directions averaged (core's pair contrast, "mean") at temperature 1 / logit scale
        loss = pair_contrastive_loss(similarity, 1 / scale, "mean")
        labels = torch.arange(len(all_image), device=image.device)
        accuracy = (similarity.argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "loss_contrastive": loss.detach(), "logit_scale": scale.detach(),
                "image_to_text_accuracy": accuracy.detach()}
