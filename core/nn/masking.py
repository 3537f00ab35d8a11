"""Maskers: random (the reference MAE's), block-wise over token coordinates, and a given pattern."""
from __future__ import annotations

import torch

from maekit.nn.base import Masker, NoiseSource
from maekit.ops import gather
from maekit.structures import Mask, Tokens

__all__ = ["RandomMasker", "BlockMasker", "GivenMasker", "check_mask_ratio", "num_visible", "draw_noise", "NoiseSource"]


def check_mask_ratio(mask_ratio: float) -> float:
    if not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}")
    return float(mask_ratio)


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """int(N·(1 − ratio)) as the reference (49 of 196 at 0.75), at least one token."""
    return max(1, int(num_tokens * (1 - mask_ratio)))


def draw_noise(shape: tuple[int, ...], noise: NoiseSource, device: torch.device,
               names: str = "(batch, tokens)") -> torch.Tensor:
    """Uniform noise of ``shape``: drawn here, given, or made by a callable ``noise(shape, device)``
    (maekit's trainer passes one seeded per sample). ``names`` says what the dims are in errors."""
    if callable(noise):
        noise = noise(shape, device)
    if noise is None:
        return torch.rand(shape, device=device)
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise must have shape {names} = {tuple(shape)}, got {tuple(noise.shape)}")
    return noise.to(device)


class RandomMasker(Masker):
    """Per-sample random masking of the reference MAE: argsort of uniform noise, low noise kept."""

    def __init__(self, mask_ratio: float = 0.75) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)

    def visible_count(self, num_tokens: int) -> int:
        """How many tokens stay visible: the reference MAE's ``int(N·(1 − ratio))``. A method whose
        reference rounds the masked count instead (``N − int(N·ratio)``) overrides this."""
        return num_visible(num_tokens, self.mask_ratio)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        return Mask.from_order(ids_shuffle, self.visible_count(tokens.num_tokens))

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}"


class BlockMasker(RandomMasker):
    """Removes contiguous blocks: the tokens nearest (in coordinates) to ``num_blocks`` random seeds.

    Works for any modality with coordinates (image grid, 3-D centres, time). Exactly as many tokens
    are removed as the random masker would remove, so batches keep one visible length; ``noise``
    picks the seeds (lowest noise) and breaks distance ties, which makes it deterministic.
    """

    def __init__(self, mask_ratio: float = 0.75, num_blocks: int = 1) -> None:
        super().__init__(mask_ratio)
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
        self.num_blocks = num_blocks

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        seeds = torch.argsort(noise, dim=1)[:, : min(self.num_blocks, tokens.num_tokens)]
        seed_coords = gather(tokens.coords, seeds)
        distance = torch.cdist(tokens.coords.float(), seed_coords.float()).amin(dim=-1)  # B×N
        # Far tokens first (kept), near ones last (removed); noise/1e3 only breaks ties.
        ids_shuffle = torch.argsort(-(distance + noise * 1e-3), dim=1)
        return Mask.from_order(ids_shuffle, self.visible_count(tokens.num_tokens))

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, num_blocks={self.num_blocks}"


class GivenMasker(Masker):
    """A fixed pattern ``masked`` (N or B×N, 1 = removed); each row must remove the same count."""

    masked: torch.Tensor

    def __init__(self, masked: torch.Tensor | list) -> None:
        super().__init__()
        masked = torch.as_tensor(masked).bool()
        if masked.dim() not in (1, 2):
            raise ValueError(f"masked must have shape (N,) or (B, N), got {tuple(masked.shape)}")
        counts = masked.reshape(-1, masked.shape[-1]).sum(dim=1)
        if (counts != counts[0]).any():
            raise ValueError(f"every row of masked must remove the same number of tokens, got {counts.tolist()}")
        if int(counts[0]) >= masked.shape[-1]:
            raise ValueError(f"masked removes all {masked.shape[-1]} tokens; at least one must stay visible")
        self.register_buffer("masked", masked, persistent=False)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        if self.masked.shape[-1] != tokens.num_tokens:
            raise ValueError(f"given mask covers {self.masked.shape[-1]} tokens, batch has {tokens.num_tokens}")
        if self.masked.dim() == 2 and self.masked.shape[0] not in (1, tokens.batch_size):
            raise ValueError(f"given mask has {self.masked.shape[0]} rows for a batch of {tokens.batch_size}")
        masked = self.masked.expand(tokens.batch_size, -1).to(torch.uint8)
        ids_shuffle = torch.argsort(masked, dim=1, stable=True)  # kept tokens first, in order
        return Mask.from_order(ids_shuffle, tokens.num_tokens - int(masked[0].sum()))
