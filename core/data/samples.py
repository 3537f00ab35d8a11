"""Real sample images bundled with scikit-image, as model-ready tensors (nothing is downloaded)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SAMPLE_IMAGES", "sample_image", "to_model_input"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Colour photographs shipped inside scikit-image's wheel.
SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")


def _skimage_loader(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        if name == "motorcycle_left":
            return skimage.data.stereo_motorcycle()[0]
        return getattr(skimage.data, name)()

    return load


def to_model_input(image: np.ndarray, size: int | tuple[int, int] = 224) -> torch.Tensor:
    """H×W×3 uint8 → (1, 3, size) float, resized (bicubic) and ImageNet-normalised as MAE expects."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 colour image, got shape {image.shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    size = (size, size) if isinstance(size, int) else tuple(size)
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def sample_image(name: str = "astronaut", size: int | tuple[int, int] = 224) -> torch.Tensor:
    """One bundled colour photograph as a normalised (1, 3, H, W) tensor."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; available: {', '.join(SAMPLE_IMAGES)}")
    return to_model_input(_skimage_loader(name)(), size)
