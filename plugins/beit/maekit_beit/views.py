"""BEiT's two views of one crop (unilm ``beit/datasets.py``: ColorJitter(0.4) → flip →
``RandomResizedCropAndInterpolationWithTwoPic``): one crop box, resized twice — bicubic to
``size`` for the encoder (normalised with ``mean``/``std``) and Lanczos to ``tokenizer_size`` for
the tokenizer (kept in [0, 1]: the DALL-E tokenizer maps its pixels itself)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from maekit.data.views import normalise

__all__ = ["BEiTViews"]


class BEiTViews:
    """``{"image": C×size², "tokenizer_view": C×tokenizer_size²}`` per image (C×H×W in [0, 1]);
    the first is the batch's ``inputs``, both are under ``batch["views"]``. ``color_jitter``:
    brightness = contrast = saturation strength (0 for one-channel images)."""

    def __init__(self, size: int = 224, tokenizer_size: int = 112, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), color_jitter: float = 0.4, flip: bool = True,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        from torchvision.transforms import v2

        if size < 1 or tokenizer_size < 1:
            raise ValueError(f"beit_views sizes must be positive, got size={size!r}, tokenizer_size={tokenizer_size!r}")
        self.size, self.tokenizer_size = size, tokenizer_size
        self.scale, self.ratio, self.flip = tuple(scale), tuple(ratio), flip
        self.jitter = v2.ColorJitter(color_jitter, color_jitter, color_jitter) if color_jitter > 0 else None
        if (mean is None) != (std is None):
            raise ValueError(f"beit_views: give both mean and std, or neither (the defaults); got mean={mean!r}, std={std!r}")
        self.mean, self.std = mean, std

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        from PIL import Image
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        if self.jitter is not None:
            if image.shape[0] != 3:
                raise ValueError(f"beit_views color_jitter needs RGB images, got {image.shape[0]} channel(s): set "
                                 f"color_jitter=0")
            image = self.jitter(image)
        if self.flip and bool(torch.rand(()) < 0.5):
            image = TF.horizontal_flip(image)
        top, left, height, width = RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
        crop = image[:, top: top + height, left: left + width].clamp(0, 1)
        encoder_view = TF.resize(crop, [self.size, self.size], InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)
        # Lanczos exists for PIL images only: the crop as 8-bit, as the reference resizes its PIL image
        pixels = (crop.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        pil = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        small = np.asarray(pil.resize((self.tokenizer_size, self.tokenizer_size), Image.LANCZOS), dtype=np.float32) / 255
        tokenizer_view = torch.from_numpy(small).reshape(self.tokenizer_size, self.tokenizer_size, -1).permute(2, 0, 1)
        return {"image": normalise(encoder_view, self.mean, self.std), "tokenizer_view": tokenizer_view.contiguous()}
