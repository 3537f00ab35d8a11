"""MRA (Xu et al., "Masked Autoencoders are Robust Data Augmentors", arXiv 2206.04846): a frozen MAE
used as a data augmentation while a classifier trains. No code was released (github.com/haohang96/MRA
holds a README only); the choices below are ours and listed in the README.

One augmentation, top to bottom (:class:`MRAugmentor`), on the training device inside the
classifier's step (not in data-loader workers):
1. the frozen MAE's encoder sees the whole image; its last block's class-token attention (each head
   min–max scaled, heads averaged) scores the patches;
2. the ``(1 − r)·N`` most attended (foreground) patches stay visible, the rest are masked (r 0.5);
3. the MAE reconstructs the masked patches from the visible ones; the visible patches are pasted
   back as they were, and the image is the augmented image;
4. each image is augmented with probability ``p`` (0.5), decided by its own seeded noise.
The MAE must predict pixels (``norm_pix_loss=False``): a norm-pix MAE's outputs become pixels
only with each masked patch's own mean and variance, which an augmentation must not see.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from maekit.eval.finetune import ViTClassifier
from maekit.nn.base import NoiseSource
from maekit.nn.masking import ScoreGuidedMasker, draw_noise
from maekit.nn.scores import cls_attention
from maekit.nn.targets import PixelTarget
from maekit.structures import Mask, Tokens

__all__ = ["MRAugmentor", "MRAClassifier", "mra_classifier"]


class MRAugmentor(nn.Module):
    """A frozen MAE that reconstructs the low-attention patches of an image (module docstring).
    ``mae``: the built method (a :class:`~maekit.model.MaskedAutoencoder` predicting raw pixels)."""

    def __init__(self, mae: nn.Module, mask_ratio: float = 0.5, probability: float = 0.5) -> None:
        super().__init__()
        if not isinstance(getattr(mae, "target", None), PixelTarget):
            raise ValueError(f"mra needs an MAE that predicts raw pixels (norm_pix_loss=False); this one's target is "
                             f"{type(getattr(mae, 'target', None)).__name__}: its outputs would need each masked patch's "
                             f"own statistics")
        if not 0 <= probability <= 1:
            raise ValueError(f"mra probability must be in [0, 1], got {probability!r}")
        self.mae = mae.requires_grad_(False).eval()
        self.masker = ScoreGuidedMasker(mask_ratio=mask_ratio, select="rank", prefer="low")  # keep the top (1 − r)N
        self.probability = float(probability)

    def train(self, mode: bool = True) -> "MRAugmentor":
        super().train(mode)
        self.mae.eval()  # frozen: never drops paths
        return self

    @torch.no_grad()
    def choose(self, tokens: Tokens, noise: torch.Tensor) -> tuple[torch.Tensor, Mask]:
        """The frozen MAE's attention over ``tokens`` (B×N: last block, class-token row, heads
        min–max scaled and averaged) and the mask keeping the most attended ``(1 − r)·N``."""
        scores = cls_attention(self.mae.encoder, tokens, layer=-1, per_head_scaling=True)
        return scores, self.masker(tokens, noise=noise, scores=scores)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, noise: NoiseSource = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented images, which were augmented: B bool). Noise: one number per patch (ties)
        and one per image (the coin)."""
        mae: Any = self.mae
        tokens = mae.tokenize(images)
        drawn = draw_noise((tokens.batch_size, tokens.num_tokens + 1), noise, images.device)
        _, mask = self.choose(tokens, drawn[:, :-1])
        latents = mae.encoder(tokens.take(mask.ids_keep))
        pred = mae.target.to_values(mae.decode(latents, mask, tokens), tokens)
        removed = mask.masked.unsqueeze(-1).to(pred.dtype)
        pasted = tokens.values * (1 - removed) + pred * removed
        augmented = mae.patchifier.unpatchify(pasted, tokens.meta).to(images.dtype)
        chosen = drawn[:, -1] < self.probability
        return torch.where(chosen[:, None, None, None], augmented, images), chosen


class MRAClassifier(ViTClassifier):
    """A ViT classifier (MAE's fine-tuning head) trained with MRA: in training, each batch passes
    through the :class:`MRAugmentor` first (none: the same classifier without MRA)."""

    def __init__(self, augmentor: MRAugmentor | None, **classifier: Any) -> None:
        super().__init__(**classifier)
        self.augmentor = augmentor

    def forward(self, batch: dict, noise: NoiseSource = None) -> dict[str, torch.Tensor]:
        if self.training and self.augmentor is not None:
            images, chosen = self.augmentor(batch["inputs"], noise)
            batch = {**batch, "inputs": images}
            losses = super().forward(batch, noise)
            return {**losses, "augmented_share": chosen.float().mean()}
        return super().forward(batch, noise)


def mra_classifier(model: dict, num_classes: int, augmentor: Mapping[str, Any] | None = None, checkpoint: str | None = None,
                   drop_path_rate: float = 0.0, global_pool: str = "avg", label_smoothing: float = 0.0) -> MRAClassifier:
    """The encoder of ``model`` (random init, or ``checkpoint``'s) with MAE's classification head,
    trained with MRA when ``augmentor`` is given: ``{"config": <a config name or file whose model
    is an MAE with norm_pix_loss=False>, "checkpoint": <its trained file>}`` (or ``"model"``: the
    model dict itself), optionally ``"mask_ratio"`` (0.5) and ``"probability"`` (0.5)."""
    from maekit.eval.probe import load_trained_model

    method = load_trained_model({**model, "drop_path_rate": drop_path_rate}, checkpoint).train()
    built = None
    if augmentor is not None:
        mae = load_trained_model(augmentor_model(augmentor), augmentor["checkpoint"])
        ours = (getattr(method.encoder, "grid_size", None), getattr(method.encoder, "patch_size", None),
                getattr(method.encoder, "in_chans", None))
        theirs = (getattr(mae.encoder, "grid_size", None), getattr(mae.encoder, "patch_size", None),
                  getattr(mae.encoder, "in_chans", None))
        if ours != theirs:  # the augmentor must read the classifier's images as they are
            raise ValueError(f"mra augmentor {augmentor.get('config') or 'model'}: its encoder takes (grid, patch, channels) "
                             f"{theirs}, the classifier's {ours}; train the augmentor on images of the classifier's size")
        built = MRAugmentor(mae, **{key: augmentor[key] for key in ("mask_ratio", "probability") if key in augmentor})
    return MRAClassifier(built, patchifier=method.patchifier, encoder=method.encoder, num_classes=num_classes,
                         global_pool=global_pool, label_smoothing=label_smoothing)


def augmentor_model(augmentor: Any) -> dict:
    """The augmentor's model config from ``model.augmentor`` (see :func:`mra_classifier`)."""
    usage = ("model.augmentor must be a dict with 'checkpoint' and either 'config' (a config name or file) or "
             "'model', optionally 'mask_ratio' and 'probability'")
    if not isinstance(augmentor, Mapping):
        raise ValueError(f"{usage}; got {augmentor!r}")
    unknown = sorted(set(augmentor) - {"config", "model", "checkpoint", "mask_ratio", "probability"})
    if unknown or not augmentor.get("checkpoint") or ("config" in augmentor) == ("model" in augmentor):
        raise ValueError(f"{usage}; got the keys {', '.join(sorted(augmentor))}")
    if "model" in augmentor:
        return dict(augmentor["model"])
    from maekit.engine import load_config

    return dict(load_config(augmentor["config"]).model)
