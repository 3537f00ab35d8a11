"""The ImageNet-C / CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019) at severities 1–5,
written over NumPy/SciPy/Pillow from the formulas of ``make_imagenet_c.py`` and ``make_cifar_c.py``
(github.com/hendrycks/robustness).

Every function takes an H×W×C float image in [0, 1], a severity (1–5) and a NumPy generator and
returns the corrupted image in [0, 1]. Two tables of severity constants: ImageNet-C's (tuned for
224-px images) and CIFAR-10-C's (32 px); :func:`corrupt` picks CIFAR's for images of at most 64
pixels a side and ImageNet's above (``table=`` chooses). The reference saves its output as uint8
(``np.uint8`` of the 0–255 values: truncation); :func:`corrupt` does the same quantisation.

Families: noise (gaussian, shot, impulse, speckle), blur (gaussian, glass, defocus, motion, zoom),
weather (fog, brightness), digital (contrast, saturate, pixelate, jpeg_compression). Not here:
frost (it blends the reference's six frost photographs, not bundled anywhere installable), snow and
spatter (ImageMagick and OpenCV pipelines), elastic_transform. Motion blur re-implements
ImageMagick's (a one-sided Gaussian trail along a random angle), as the reference calls it through Wand.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
import torch

__all__ = ["CORRUPTIONS", "FAMILIES", "CONSTANTS", "corrupt", "disk_kernel", "plasma_fractal", "clipped_zoom",
           "motion_kernel"]

# (imagenet, cifar) severity constants per corruption, as the two reference scripts list them
CONSTANTS: dict[str, tuple[list, list]] = {
    "gaussian_noise": ([0.08, 0.12, 0.18, 0.26, 0.38], [0.04, 0.06, 0.08, 0.09, 0.10]),
    "shot_noise": ([60, 25, 12, 5, 3], [500, 250, 100, 75, 50]),
    "impulse_noise": ([0.03, 0.06, 0.09, 0.17, 0.27], [0.01, 0.02, 0.03, 0.05, 0.07]),
    "speckle_noise": ([0.15, 0.2, 0.35, 0.45, 0.6], [0.06, 0.1, 0.12, 0.16, 0.2]),
    "gaussian_blur": ([1, 2, 3, 4, 6], [0.4, 0.6, 0.7, 0.8, 1.0]),
    "glass_blur": ([(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
                   [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]),
    "defocus_blur": ([(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
                     [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]),
    "motion_blur": ([(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)], [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]),
    "zoom_blur": ([np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
                   np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)],
                  [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                   np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)]),
    "fog": ([(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)], [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]),
    "brightness": ([0.1, 0.2, 0.3, 0.4, 0.5], [0.05, 0.1, 0.15, 0.2, 0.3]),
    "contrast": ([0.4, 0.3, 0.2, 0.1, 0.05], [0.75, 0.5, 0.4, 0.3, 0.15]),
    "saturate": ([(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)], [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]),
    "pixelate": ([0.6, 0.5, 0.4, 0.3, 0.25], [0.95, 0.9, 0.85, 0.75, 0.65]),
    "jpeg_compression": ([25, 18, 15, 10, 7], [80, 65, 58, 50, 40]),
}

FAMILIES = {"noise": ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"],
            "blur": ["gaussian_blur", "glass_blur", "defocus_blur", "motion_blur", "zoom_blur"],
            "weather": ["fog", "brightness"],
            "digital": ["contrast", "saturate", "pixelate", "jpeg_compression"]}

Image = np.ndarray


def _clip(x: Image) -> Image:
    return np.clip(x, 0, 1)


def gaussian_noise(x: Image, c: float, rng: np.random.Generator) -> Image:
    return _clip(x + rng.normal(size=x.shape, scale=c))


def shot_noise(x: Image, c: float, rng: np.random.Generator) -> Image:
    return _clip(rng.poisson(x * c) / c)


def impulse_noise(x: Image, c: float, rng: np.random.Generator) -> Image:
    """Salt and pepper as scikit-image's ``random_noise(mode="s&p", amount=c)``: each value flipped
    with probability c, to 1 or 0 with even odds."""
    flipped, salted = rng.random(x.shape) < c, rng.random(x.shape) < 0.5
    out = x.copy()
    out[flipped & salted], out[flipped & ~salted] = 1.0, 0.0
    return out


def speckle_noise(x: Image, c: float, rng: np.random.Generator) -> Image:
    return _clip(x + x * rng.normal(size=x.shape, scale=c))


def _gaussian(x: Image, sigma: float) -> Image:
    """scikit-image's ``gaussian`` per channel (mode nearest, truncate 4)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)


def gaussian_blur(x: Image, c: float, rng: np.random.Generator) -> Image:
    return _clip(_gaussian(x, c))


def glass_blur(x: Image, c: tuple, rng: np.random.Generator) -> Image:
    """Blur, then ``iterations`` sweeps (bottom-right to top-left) giving each pixel the value of one
    up to ``delta`` away (randint(-delta, delta)), then blur again; the reference rounds to uint8
    between. Its "swap" (``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on an RGB array) assigns through
    NumPy views, so the second pixel keeps its value: a copy, reproduced here."""
    sigma, delta, iterations = c
    x = np.floor(_gaussian(x, sigma) * 255) / 255
    height, width = x.shape[:2]
    for _ in range(iterations):
        for h in range(height - delta, delta, -1):
            for w in range(width - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=2)
                x[h, w] = x[h + dy, w + dx]
    return _clip(_gaussian(x, sigma))


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's ``disk``: the pixels within ``radius`` of the centre on a grid of ±max(8, radius),
    normalised, then smoothed by OpenCV's GaussianBlur (3×3, or 5×5 past radius 8; reflect-101 edges)."""
    from scipy.ndimage import correlate1d

    half = 8 if radius <= 8 else int(radius)
    taps = 1 if radius <= 8 else 2
    grid = np.arange(-half, half + 1)
    xs, ys = np.meshgrid(grid, grid)
    disk = ((xs ** 2 + ys ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    weights = np.exp(-(np.arange(-taps, taps + 1) ** 2) / (2 * alias_blur ** 2))
    weights /= weights.sum()
    return correlate1d(correlate1d(disk, weights, axis=0, mode="mirror"), weights, axis=1, mode="mirror")


def defocus_blur(x: Image, c: tuple, rng: np.random.Generator) -> Image:
    from scipy.ndimage import correlate

    kernel = disk_kernel(*c)
    return _clip(np.stack([correlate(x[..., d], kernel, mode="mirror") for d in range(x.shape[-1])], axis=-1))


def motion_kernel(radius: int, sigma: float, angle: float) -> list[tuple[int, int, float]]:
    """ImageMagick's motion-blur kernel: 2·radius + 1 taps i = 0, 1, … with weights exp(−i²/2σ²)
    (normalised), tap i at the offset i·(cos, sin) of ``angle`` (degrees), rounded: a one-sided trail."""
    width = 2 * radius + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma ** 2))
    weights /= weights.sum()
    dy, dx = np.sin(np.deg2rad(angle)), np.cos(np.deg2rad(angle))
    return [(int(np.ceil(i * dy - 0.5)), int(np.ceil(i * dx - 0.5)), float(w)) for i, w in enumerate(weights)]


def motion_blur(x: Image, c: tuple, rng: np.random.Generator) -> Image:
    radius, sigma = c
    height, width = x.shape[:2]
    out = np.zeros_like(x)
    for dy, dx, weight in motion_kernel(radius, sigma, rng.uniform(-45, 45)):
        rows = np.clip(np.arange(height) + dy, 0, height - 1)  # edges repeat
        cols = np.clip(np.arange(width) + dx, 0, width - 1)
        out += weight * x[rows][:, cols]
    return _clip(out)


def clipped_zoom(x: Image, factor: float) -> Image:
    """The centre 1/factor of the image zoomed by ``factor`` (bilinear, SciPy) and trimmed back to size."""
    from scipy.ndimage import zoom

    height, width = x.shape[:2]
    crop_h, crop_w = int(np.ceil(height / factor)), int(np.ceil(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    zoomed = zoom(x[top:top + crop_h, left:left + crop_w], (factor, factor, 1), order=1)
    trim_h, trim_w = (zoomed.shape[0] - height) // 2, (zoomed.shape[1] - width) // 2
    return zoomed[trim_h:trim_h + height, trim_w:trim_w + width]


def zoom_blur(x: Image, c: np.ndarray, rng: np.random.Generator) -> Image:
    out = np.zeros_like(x)
    for factor in c:
        out += clipped_zoom(x, float(factor))
    return _clip((x + out) / (len(c) + 1))


def plasma_fractal(size: int, wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """The reference's diamond-square height map (size a power of two), scaled to [0, 1]."""
    if size & (size - 1):
        raise ValueError(f"plasma fractal size must be a power of two, got {size}")
    grid = np.zeros((size, size), dtype=np.float64)
    step, wibble = size, 100.0
    grid[0, 0] = 0

    def wibbled_mean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while step >= 2:
        half = step // 2
        # squares: the mean of each square's corners, plus noise, at its centre
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        grid[half:size:step, half:size:step] = wibbled_mean(square)
        # diamonds: the mean of each diamond's corners, plus noise, at the square's edges
        corners = grid[0:size:step, 0:size:step]
        centres = grid[half:size:step, half:size:step]
        left = centres + np.roll(centres, shift=1, axis=0)
        top = corners + np.roll(corners, shift=-1, axis=1)
        grid[0:size:step, half:size:step] = wibbled_mean(left + top)
        left = centres + np.roll(centres, shift=1, axis=1)
        top = corners + np.roll(corners, shift=-1, axis=0)
        grid[half:size:step, 0:size:step] = wibbled_mean(left + top)
        step //= 2
        wibble /= wibble_decay
    grid -= grid.min()
    return grid / grid.max()


def fog(x: Image, c: tuple, rng: np.random.Generator) -> Image:
    height, width = x.shape[:2]
    size = 1 << int(np.ceil(np.log2(max(height, width, 2))))
    peak = x.max()
    x = x + c[0] * plasma_fractal(size, c[1], rng)[:height, :width, None]
    return _clip(x * peak / (peak + c[0]))


def _hsv(x: Image, change: Callable[[np.ndarray], None]) -> Image:
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    change(hsv)
    return _clip(hsv2rgb(hsv))


def brightness(x: Image, c: float, rng: np.random.Generator) -> Image:
    def brighter(hsv: np.ndarray) -> None:
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return _hsv(x, brighter)


def saturate(x: Image, c: tuple, rng: np.random.Generator) -> Image:
    def saturated(hsv: np.ndarray) -> None:
        hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return _hsv(x, saturated)


def contrast(x: Image, c: float, rng: np.random.Generator) -> Image:
    means = x.mean(axis=(0, 1), keepdims=True)
    return _clip((x - means) * c + means)


def _pil(x: Image):
    from PIL import Image as PILImage

    return PILImage.fromarray(np.uint8(_clip(x) * 255))


def pixelate(x: Image, c: float, rng: np.random.Generator) -> Image:
    from PIL import Image as PILImage

    height, width = x.shape[:2]
    small = _pil(x).resize((max(1, int(width * c)), max(1, int(height * c))), PILImage.Resampling.BOX)
    return np.asarray(small.resize((width, height), PILImage.Resampling.BOX), dtype=np.float64) / 255


def jpeg_compression(x: Image, c: int, rng: np.random.Generator) -> Image:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    _pil(x).save(buffer, "JPEG", quality=int(c))
    return np.asarray(PILImage.open(buffer), dtype=np.float64) / 255


CORRUPTIONS: dict[str, Callable[[Image, object, np.random.Generator], Image]] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise, "gaussian_blur": gaussian_blur, "glass_blur": glass_blur,
    "defocus_blur": defocus_blur, "motion_blur": motion_blur, "zoom_blur": zoom_blur, "fog": fog,
    "brightness": brightness, "contrast": contrast, "saturate": saturate, "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
_COLOUR = ("brightness", "saturate")  # HSV: a grey image goes through as RGB


def corrupt(image: torch.Tensor, name: str, severity: int, seed: int = 0, table: str = "auto",
            quantise: bool = True) -> torch.Tensor:
    """``image`` (C×H×W in [0, 1], C = 1 or 3) corrupted by ``name`` at ``severity`` (1–5), its
    random draws from ``seed``. ``table``: ``imagenet``, ``cifar`` or ``auto`` (CIFAR's constants up
    to 64 px a side). ``quantise``: round down to 8-bit levels as the reference's saved files."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"corruption severity must be 1–5, got {severity!r}")
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"corruptions take one C×H×W image with 1 or 3 channels, got shape {tuple(image.shape)}")
    if table not in ("auto", "imagenet", "cifar"):
        raise ValueError(f"corruption table must be 'auto', 'imagenet' or 'cifar', got {table!r}")
    if table == "auto":
        table = "cifar" if max(image.shape[-2:]) <= 64 else "imagenet"
    constant = CONSTANTS[name][0 if table == "imagenet" else 1][severity - 1]
    x = image.detach().cpu().permute(1, 2, 0).double().numpy().clip(0, 1)
    grey = x.shape[-1] == 1
    if grey and (name in _COLOUR or name in ("pixelate", "jpeg_compression")):
        x = np.repeat(x, 3, axis=-1)
    out = CORRUPTIONS[name](x, constant, np.random.default_rng(seed))
    if grey and out.shape[-1] == 3:
        out = out.mean(axis=-1, keepdims=True)
    if quantise:  # np.uint8 truncates; the tolerance keeps float32 inputs on 8-bit levels where they were
        out = np.floor(out * 255 + 1e-4) / 255
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).to(image.dtype)
