"""Input-domain corruptions of MFM: the frequency mask, and its siblings from the same code family
(super-resolution, deblur, denoise). All act batched on the device on images in [0, 1].

Each is a masker that removes no token: its :class:`Corruption` keeps every token (MFM's encoder
sees the whole corrupted image) and carries the per-sample decisions (the kept-frequency map, or
per-sample strengths) that the corruption and the loss read.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from maekit.nn.base import Masker, NoiseSource
from maekit.nn.masking import draw_noise
from maekit.structures import Mask, Tokens

__all__ = ["Corruption", "ImageCorruption", "FrequencyMasker", "DownUpSampleCorruption", "GaussianBlurCorruption",
           "GaussianNoiseCorruption", "radius_mask", "frequency_filter", "paste_frequencies"]

@dataclass
class Corruption(Mask):
    """A mask that keeps every token, plus the corruption's per-sample state.

    ``kept_frequencies`` (B×H×W, centred-spectrum layout, 1 = kept) for frequency masking;
    ``strength`` (B) for the siblings (blur sigma, noise sigma, ...).
    """

    kept_frequencies: torch.Tensor | None = None
    strength: torch.Tensor | None = None


def radius_mask(size: tuple[int, int], radius_inner: float, radius_outer: float,
                device: torch.device | str | None = None) -> torch.Tensor:
    """The reference base mask (H×W, centred spectrum): 0 where r1² ≤ d² < r2², else 1, with d the
    distance from the zero frequency at (H//2, W//2), where ``fftshift`` puts it at any size parity.
    The reference is square-only; for H ≠ W the radius is in frequency-index units on both axes (a
    circle in index space), so the cut-off in cycles per pixel differs between the axes."""
    height, width = size
    rows = torch.arange(height, device=device).view(-1, 1) - height // 2
    cols = torch.arange(width, device=device).view(1, -1) - width // 2
    squared = rows ** 2 + cols ** 2
    removed = (squared >= radius_inner ** 2) & (squared < radius_outer ** 2)
    return (~removed).float()


def frequency_filter(images: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """fft2 → fftshift → × kept → ifftshift → ifft2 → real part → clamp [0, 1], as the reference.

    ``kept`` is B×H×W (or H×W) in the centred layout; the same mask applies to every channel.
    Multiplying the unshifted spectrum by ``ifftshift(kept)`` is the same product without moving
    the spectrum twice. FFTs run in float32 whatever the autocast dtype.
    """
    kept = kept.unsqueeze(-3) if kept.dim() == 3 else kept
    spectrum = torch.fft.fft2(images.float())
    filtered = torch.fft.ifft2(spectrum * torch.fft.ifftshift(kept.float(), dim=(-2, -1))).real
    return filtered.clamp(0.0, 1.0)


def paste_frequencies(source: torch.Tensor, prediction: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """The kept frequencies of ``source`` with the removed ones of ``prediction`` (for pictures:
    MAE's "reconstruction with the visible patches pasted", in the frequency domain)."""
    shifted = torch.fft.ifftshift(kept.unsqueeze(-3).float(), dim=(-2, -1))
    spectrum = torch.fft.fft2(source.float()) * shifted + torch.fft.fft2(prediction.float()) * (1 - shifted)
    return torch.fft.ifft2(spectrum).real


class ImageCorruption(Masker):
    """Base of MFM's corruptions: ``forward`` decides per sample (no token is dropped), ``corrupt``
    applies the decision to images in [0, 1]."""

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        """One uniform number per sample decides its corruption."""
        return (tokens.batch_size, 1)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Corruption:
        batch, device = tokens.batch_size, tokens.values.device
        keep_all = Corruption.keep_all(batch, tokens.num_tokens, device=device)
        uniform = draw_noise(self.noise_shape(tokens), noise, device, names="(batch, 1): one number per sample")[:, 0]
        return self.decide(keep_all, tuple(tokens.meta["image_size"]), uniform)

    def decide(self, keep_all: Corruption, image_size: tuple[int, int], uniform: torch.Tensor) -> Corruption:
        return keep_all

    def corrupt(self, images: torch.Tensor, corruption: Corruption) -> torch.Tensor:
        raise NotImplementedError


class FrequencyMasker(ImageCorruption):
    """MFM's frequency mask: the radius mask (r1, r2) as low-pass with probability ``sample_ratio``,
    else its complement (high-pass), per sample; the same mask for all channels. Defaults are the
    reference's (r1 16, r2 999 = a plain disk, sample_ratio 0.5 for ViT; 0.3 for ResNet-50)."""

    def __init__(self, radius_inner: float = 16, radius_outer: float = 999, sample_ratio: float = 0.5) -> None:
        super().__init__()
        if not 0 <= radius_inner < radius_outer:
            raise ValueError(f"frequency mask radii must satisfy 0 <= radius_inner < radius_outer, "
                             f"got {radius_inner}, {radius_outer}")
        if not 0.0 <= sample_ratio <= 1.0:
            raise ValueError(f"sample_ratio (probability of a low-pass mask) must be in [0, 1], got {sample_ratio}")
        self.radius_inner, self.radius_outer, self.sample_ratio = radius_inner, radius_outer, sample_ratio

    def decide(self, keep_all: Corruption, image_size: tuple[int, int], uniform: torch.Tensor) -> Corruption:
        if self.radius_inner >= min(image_size) / 2:
            raise ValueError(f"radius_inner {self.radius_inner} must be below half the image size {image_size} "
                             f"(scale it with the image: the reference uses 16 at 224)")
        base = radius_mask(image_size, self.radius_inner, self.radius_outer, device=uniform.device)
        low_pass = (uniform < self.sample_ratio).float().view(-1, 1, 1)  # Bernoulli(sample_ratio) = low-pass
        kept = low_pass * base + (1 - low_pass) * (1 - base)
        return replace(keep_all, kept_frequencies=kept)

    def corrupt(self, images: torch.Tensor, corruption: Corruption) -> torch.Tensor:
        return frequency_filter(images, corruption.kept_frequencies)


class DownUpSampleCorruption(ImageCorruption):
    """Super-resolution sibling: down-sample by ``factor`` and back (bicubic, clamped after each),
    the reference's ``sr`` filter (factor 8)."""

    def __init__(self, factor: int = 8, mode: str = "bicubic") -> None:
        super().__init__()
        if not isinstance(factor, int) or factor < 2:
            raise ValueError(f"super-resolution factor must be an int >= 2, got {factor!r}")
        self.factor, self.mode = factor, mode

    def corrupt(self, images: torch.Tensor, corruption: Corruption) -> torch.Tensor:
        height, width = images.shape[-2:]
        if height < self.factor or width < self.factor:
            raise ValueError(f"images of {height}×{width} are smaller than the down-sampling factor {self.factor}")
        small = F.interpolate(images, size=(height // self.factor, width // self.factor), mode=self.mode).clamp(0, 1)
        return F.interpolate(small, size=(height, width), mode=self.mode).clamp(0, 1)


def _uniform_range(bounds: Sequence[float], uniform: torch.Tensor, what: str) -> torch.Tensor:
    low, high = (float(b) for b in bounds)
    if not 0 <= low <= high:
        raise ValueError(f"{what} must be a range (low, high) with 0 <= low <= high, got {tuple(bounds)}")
    return low + (high - low) * uniform


class GaussianBlurCorruption(ImageCorruption):
    """Deblur sibling: isotropic Gaussian blur, sigma uniform in ``sigma`` and an odd kernel size
    drawn from ``kernel_sizes`` per sample, reflect-101 borders (OpenCV's ``filter2D`` default, as
    the reference). The paper's ViT config: sigma 5, sizes 7…21."""

    def __init__(self, sigma: Sequence[float] = (5.0, 5.0), kernel_sizes: Sequence[int] = (7, 9, 11, 13, 15, 17, 19, 21)) -> None:
        super().__init__()
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd positive ints, got {tuple(kernel_sizes)}")
        _uniform_range(sigma, torch.zeros(1), "blur sigma")
        self.sigma, self.kernel_sizes = tuple(sigma), tuple(int(k) for k in kernel_sizes)

    def decide(self, keep_all: Corruption, image_size: tuple[int, int], uniform: torch.Tensor) -> Corruption:
        # one uniform number picks both: the size from its index bucket, sigma from the remainder
        scaled = uniform * len(self.kernel_sizes)
        index = scaled.floor().clamp(max=len(self.kernel_sizes) - 1)
        sigma = _uniform_range(self.sigma, (scaled - index).clamp(0, 1), "blur sigma")
        sizes = torch.tensor(self.kernel_sizes, device=uniform.device)[index.long()].float()
        return replace(keep_all, strength=torch.stack([sigma, sizes], dim=1))

    def corrupt(self, images: torch.Tensor, corruption: Corruption) -> torch.Tensor:
        batch, channels = images.shape[:2]
        sigma, sizes = corruption.strength[:, 0], corruption.strength[:, 1]
        radius = max(self.kernel_sizes) // 2
        offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
        inside = offsets.abs().view(1, -1) <= (sizes.view(-1, 1) - 1) / 2  # each sample's own kernel size
        profile = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigma.view(-1, 1).clamp_min(1e-6) ** 2)) * inside
        kernel = profile.unsqueeze(2) * profile.unsqueeze(1)
        kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
        weight = kernel.repeat_interleave(channels, dim=0).unsqueeze(1).to(images.dtype)
        padded = F.pad(images.reshape(1, batch * channels, *images.shape[-2:]), (radius,) * 4, mode="reflect")
        return F.conv2d(padded, weight, groups=batch * channels).reshape(images.shape).clamp(0, 1)


class GaussianNoiseCorruption(ImageCorruption):
    """Denoise sibling: additive Gaussian noise, sigma uniform in ``sigma`` per sample in 0–255
    units (the reference's convention; its ViT config uses 75), not clipped (as the reference's
    Gaussian noise). The noise is drawn anew on every call."""

    def __init__(self, sigma: Sequence[float] = (75.0, 75.0)) -> None:
        super().__init__()
        _uniform_range(sigma, torch.zeros(1), "noise sigma")
        self.sigma = tuple(sigma)

    def decide(self, keep_all: Corruption, image_size: tuple[int, int], uniform: torch.Tensor) -> Corruption:
        return replace(keep_all, strength=_uniform_range(self.sigma, uniform, "noise sigma") / 255.0)

    def corrupt(self, images: torch.Tensor, corruption: Corruption) -> torch.Tensor:
        sigma = corruption.strength.view(-1, 1, 1, 1).to(images.dtype)
        return images + torch.randn_like(images) * sigma
