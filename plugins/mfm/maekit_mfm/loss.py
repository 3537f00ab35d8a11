"""MFM's target (the normalised image) and its frequency loss."""
from __future__ import annotations

from typing import Any

import torch

from maekit.nn.base import Loss, Target
from maekit.nn.patchify import unpatchify
from maekit.structures import Mask, Tokens

__all__ = ["ImageTarget", "FrequencyLoss", "to_spectrum"]


class ImageTarget(Target):
    """The whole uncorrupted image, normalised as the encoder's input (B×C×H×W): MFM predicts the
    image, not the spectrum, and compares the two in the frequency domain."""

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        return unpatchify(tokens.values, tokens.meta["grid_size"], tokens.meta["patch_size"])


def to_spectrum(images: torch.Tensor, patch_factor: int = 1) -> torch.Tensor:
    """Centred orthonormal spectra B×P×C×H'×W' (complex) of the P = patch_factor² crops of each
    image, in float32: ``fftshift(fft2(x, norm="ortho"))`` as the reference's ``tensor2freq``."""
    batch, channels, height, width = images.shape
    if height % patch_factor or width % patch_factor:
        raise ValueError(f"patch_factor {patch_factor} must divide the image size {height}×{width}")
    h, w = height // patch_factor, width // patch_factor
    crops = images.float().reshape(batch, channels, patch_factor, h, patch_factor, w)
    crops = crops.permute(0, 2, 4, 1, 3, 5).reshape(batch, patch_factor ** 2, channels, h, w)  # row-major crops
    return torch.fft.fftshift(torch.fft.fft2(crops, norm="ortho"), dim=(-2, -1))


class FrequencyLoss(Loss):
    """MFM's frequency loss (focal frequency loss with the focal matrix off by default).

    Per frequency: |F(pred) − F(target)|^gamma with |z| = sqrt(Re² + Im² + 1e-12), on centred
    orthonormal spectra. ``recover="masked"`` (pre-training) averages over the frequencies the
    corruption removed only: Σ loss·(1 − kept) / Σ(1 − kept) / C / P, exactly the reference's
    reduction; ``recover="normal"`` (the sibling corruptions) is the plain mean. ``with_matrix``
    turns on the focal weight (|distance|^matrix_gamma, optionally log(1 + ·), scaled to [0, 1] by
    the per-spectrum maximum, or the batch's with ``batch_matrix``; no gradient through it);
    ``ave_spectrum`` compares batch-mean spectra.
    """

    def __init__(self, loss_gamma: float = 1.0, recover: str = "masked", matrix_gamma: float = 1.0,
                 patch_factor: int = 1, ave_spectrum: bool = False, with_matrix: bool = False,
                 log_matrix: bool = False, batch_matrix: bool = False) -> None:
        super().__init__()
        if recover not in ("masked", "normal"):
            raise ValueError(f"recover must be 'masked' (removed frequencies only) or 'normal' (all), got {recover!r}")
        if recover == "masked" and patch_factor != 1:
            raise ValueError("recover='masked' needs patch_factor=1: the frequency mask is defined on the whole image")
        self.loss_gamma, self.recover, self.matrix_gamma = loss_gamma, recover, matrix_gamma
        self.patch_factor, self.ave_spectrum = patch_factor, ave_spectrum
        self.with_matrix, self.log_matrix, self.batch_matrix = with_matrix, log_matrix, batch_matrix

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The (optionally focal-weighted) per-frequency loss, B×P×C×H×W."""
        pred_freq, target_freq = to_spectrum(pred, self.patch_factor), to_spectrum(target, self.patch_factor)
        if self.ave_spectrum:
            pred_freq, target_freq = pred_freq.mean(0, keepdim=True), target_freq.mean(0, keepdim=True)
        difference = pred_freq - target_freq
        squared = difference.real ** 2 + difference.imag ** 2
        loss = torch.sqrt(squared + 1e-12) ** self.loss_gamma
        if self.with_matrix:
            loss = self.focal_weight(squared.detach()) * loss
        return loss

    def focal_weight(self, squared: torch.Tensor) -> torch.Tensor:
        weight = torch.sqrt(squared) ** self.matrix_gamma
        if self.log_matrix:
            weight = torch.log(weight + 1.0)
        scale = weight.max() if self.batch_matrix else weight.amax(dim=(-2, -1), keepdim=True)
        weight = torch.nan_to_num(weight / scale, nan=0.0)
        return weight.clamp(0.0, 1.0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: Mask) -> dict[str, torch.Tensor]:
        if pred.shape != target.shape or pred.dim() != 4:
            raise ValueError(f"frequency loss expects images B×C×H×W of equal shape, got {tuple(pred.shape)} "
                             f"and {tuple(target.shape)}")
        loss = self.distance(pred, target)
        if self.recover == "normal":
            return {"loss": loss.mean()}
        kept = getattr(mask, "kept_frequencies", None)
        if kept is None:
            raise ValueError("recover='masked' needs a frequency mask (masker 'mfm_frequency_mask'); "
                             "the sibling corruptions use recover='normal'")
        removed = (1 - kept.float()).unsqueeze(1).unsqueeze(1)  # B×1×1×H×W
        channels, crops = pred.shape[1], loss.shape[1]
        total = (loss * removed).sum() / removed.sum().clamp_min(1.0) / channels / crops
        return {"loss": total}
