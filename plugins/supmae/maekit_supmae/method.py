"""SupMAE (Liang, Li & Marculescu 2022, *Supervised Masked Autoencoders Are Efficient Vision
Learners*; reference code enyac-group/supmae): MAE plus a classification branch on the encoding
of the visible tokens."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from maekit.methods.mae import mae
from maekit.model import MaskedAutoencoder
from maekit.structures import ForwardPass

__all__ = ["ClassificationBranch", "SupMAE", "supmae"]


class ClassificationBranch(nn.Module):
    """The reference's ``cls_head`` on the encoder output of the visible patches: the mean of the
    patch tokens (``global_pool``, the recommended setting) or the cls token, then
    Linear(D, hidden) → BatchNorm1d → ReLU → Linear(hidden, classes); ``hidden=0`` is one Linear."""

    def __init__(self, embed_dim: int, num_classes: int, hidden: int = 3072, global_pool: bool = True,
                 num_prefix_tokens: int = 1) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"supmae num_classes must be at least 2, got {num_classes}")
        self.global_pool, self.num_prefix_tokens, self.num_classes = global_pool, num_prefix_tokens, num_classes
        if hidden:
            self.head = nn.Sequential(nn.Linear(embed_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, num_classes))
        else:
            self.head = nn.Linear(embed_dim, num_classes)
        for module in self.modules():  # the reference's init: xavier-uniform Linear, zero bias
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        features = latents[:, self.num_prefix_tokens:].mean(dim=1) if self.global_pool else latents[:, 0]
        return self.head(features)


class SupMAE(MaskedAutoencoder):
    """MAE's pass unchanged, plus ``cls_loss_ratio · CE(logits / temperature, label)`` from the
    classification branch on the same visible latents (``auxiliary_losses``, core's step for an
    extra term). The reference's defaults: ratio 0.01, temperature 10.

    Samples labelled −1 (unlabelled) are left out of the cross-entropy; a batch with no label at
    all is an error rather than silently plain MAE.
    """

    def __init__(self, classifier: ClassificationBranch, cls_loss_ratio: float = 0.01, temperature: float = 10.0,
                 **components: Any) -> None:
        super().__init__(**components)
        if cls_loss_ratio < 0 or temperature <= 0:
            raise ValueError(f"supmae needs cls_loss_ratio >= 0 and temperature > 0; got {cls_loss_ratio}, {temperature}")
        self.classifier, self.cls_loss_ratio, self.temperature = classifier, cls_loss_ratio, temperature

    def auxiliary_losses(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        batch, latents = out.batch, out.latents
        labels = batch.get("label") if isinstance(batch, dict) else None
        if labels is None:
            raise ValueError("SupMAE needs class labels: batches must carry 'label' (a labelled dataset, "
                             "e.g. image_folder with class folders or digits)")
        labels = torch.as_tensor(labels, device=latents.device).long()
        num_classes = self.classifier.num_classes
        if (labels < -1).any() or (labels >= num_classes).any():
            raise ValueError(f"SupMAE labels must be in [0, {num_classes}) (or -1 for unlabelled); got "
                             f"[{int(labels.min())}, {int(labels.max())}] — check num_classes")
        if not (labels >= 0).any():
            raise ValueError("SupMAE got a batch with no labelled sample (every label is -1); use a labelled dataset")
        logits = self.classifier(latents)
        cross_entropy = F.cross_entropy(logits.float() / self.temperature, labels, ignore_index=-1)
        accuracy = (logits.argmax(dim=1) == labels)[labels >= 0].float().mean()
        return {"loss": self.cls_loss_ratio * cross_entropy, "loss_classification": cross_entropy.detach(),
                "train_accuracy": accuracy.detach()}


def supmae(num_classes: int = 1000, cls_hidden: int = 3072, global_pool: bool = True, cls_loss_ratio: float = 0.01,
           temperature: float = 10.0, decoder_depth: int = 1, **mae_options: Any) -> SupMAE:
    """SupMAE from core's ``mae`` builder (its options: size, img_size, mask_ratio, norm_pix_loss,
    decoder sizes, ...) and the classification branch. Defaults: the reference's recommended
    ViT-B setting (decoder 512 wide, 1 block; mean-pooled 3072-wide MLP head; ratio 0.01;
    temperature 10)."""
    model = mae(decoder_depth=decoder_depth, **mae_options)
    classifier = ClassificationBranch(model.encoder.embed_dim, num_classes, cls_hidden, global_pool,
                                      model.encoder.num_prefix_tokens)
    return SupMAE(classifier, cls_loss_ratio, temperature, patchifier=model.patchifier, masker=model.masker,
                  encoder=model.encoder, decoder=model.decoder, target=model.target, loss=model.loss)
