"""Stain separation of H&E (or H-DAB) tiles into single-stain images.

Beer–Lambert: an RGB pixel ``I`` in (0, 1] has optical density ``OD = -ln I`` per channel, and
``OD = C @ S`` where the rows of ``S`` are the stains' unit OD vectors and ``C`` their
concentrations. Two ways to find ``C``:

- **Ruifrok–Johnston** (:func:`ruifrok_concentrations`): a fixed stain matrix (scikit-image's
  ``rgb_from_hed``: haematoxylin, eosin, DAB) inverted once; batched torch, so it runs on the fly on
  the training device.
- **Vahadane** (:func:`vahadane_separation`): the stain matrix learnt per image by non-negative
  sparse dictionary learning on the tissue pixels' OD (the MMAE reference uses SPAMS; here
  scikit-learn), concentrations by non-negative lasso. Per image and slow: cache it
  (``maekit pathology-stains``).

A stain image is ``exp(-C)`` (the tile as if stained with that stain alone, in (0, 1]), then
:func:`truncated_standardise`-d per image as the reference does before the images reach the model.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["RGB_FROM_HED", "STAIN_NAMES", "ruifrok_concentrations", "vahadane_separation", "stain_images",
           "truncated_standardise", "nonnegative_lasso", "StainSeparation", "NoTissueError", "stain_check"]

# Ruifrok & Johnston's stain OD vectors exactly as scikit-image states them (rows: H, E, DAB).
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
STAIN_NAMES = ("hematoxylin", "eosin")
DEFAULT_EPS = 1.0 / 255.0  # the darkest non-zero 8-bit value: OD stays finite on black pixels


def _check_rgb(rgb: torch.Tensor, what: str = "image") -> None:
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"{what}: stain separation needs RGB images (…×3×H×W), got shape {tuple(rgb.shape)}")


def stain_check(rgb: torch.Tensor, eps: float = DEFAULT_EPS) -> tuple[str, str] | None:
    """(kind, reason) when a 3×H×W tile is not an H&E image, else None: kind "grayscale" for an image (R = G = B: its eosin image
    would be all zero), or one whose Ruifrok deconvolution finds more DAB than eosin over the tissue,
    and DAB over a quarter of all three (an IHC stain: haematoxylin counterstain + DAB). Cheap: one
    3×3 unmixing per pixel. Kind "ihc" for the latter (a heuristic: callers warn by default)."""
    if torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2]):
        return "grayscale", "a grayscale image (R = G = B), not an H&E tile: its eosin image would be all zero"
    concentrations = ruifrok_concentrations(rgb, eps)
    tissue = concentrations.sum(dim=0) > 0.15  # optical density of background (white) is ~0
    if tissue.sum() < 0.05 * tissue.numel():
        return None  # mostly background: nothing to judge the stain by
    hematoxylin, eosin, dab = (concentrations[k][tissue].mean() for k in range(3))
    if dab > eosin and dab > 0.25 * (hematoxylin + eosin + dab):
        return "ihc", (f"looks like an IHC (DAB) stain, not H&E: mean concentrations over the tissue "
                       f"H {hematoxylin:.2f}, E {eosin:.2f}, DAB {dab:.2f}")
    return None


def ruifrok_concentrations(rgb: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Haematoxylin, eosin and DAB concentrations (…×3×H×W, ≥ 0) of RGB images in [0, 1]
    (…×3×H×W), by the fixed Ruifrok–Johnston matrix: ``C = max(0, OD @ inv(S))``.

    scikit-image's ``rgb2hed`` is the same up to its OD scale ``1/ln(1e6)`` (with ``eps=1e-6``)."""
    _check_rgb(rgb)
    od = -torch.log(rgb.clamp(min=eps))
    unmix = torch.as_tensor(np.linalg.inv(RGB_FROM_HED), dtype=od.dtype, device=od.device)
    concentrations = torch.einsum("...chw,cs->...shw", od, unmix)
    return concentrations.clamp(min=0)


def truncated_standardise(images: torch.Tensor, keep: float = 0.8, min_std: float = 0.01) -> torch.Tensor:
    """Per image (…×H×W → same shape): subtract the mean and divide by the standard deviation of
    the middle ``keep`` share of its sorted values (the tails, e.g. white background and the darkest
    nuclei, do not set the scale). The deviation is floored at ``min_std`` (stain images live in
    (0, 1]) so a stain that is all but absent — eosin on an H-DAB slide — is not blown up to noise."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    flat = images.flatten(-2)
    ordered = flat.sort(dim=-1).values
    count = ordered.shape[-1]
    cut = int(round(count * (1 - keep) / 2))
    middle = ordered[..., cut:count - cut] if count - 2 * cut > 1 else ordered
    mean = middle.mean(-1, keepdim=True)
    std = middle.std(-1, keepdim=True).clamp(min=min_std)
    return ((flat - mean) / std).view_as(images)


def stain_images(concentrations: torch.Tensor, standardise: bool = True) -> torch.Tensor:
    """Single-stain images ``exp(-C)`` (…×S×H×W), truncated-standardised per image and stain."""
    images = torch.exp(-concentrations)
    return truncated_standardise(images) if standardise else images


def nonnegative_lasso(od: np.ndarray, dictionary: np.ndarray, lambda_: float, iterations: int = 100) -> np.ndarray:
    """Concentrations ``A ≥ 0`` (P×K) minimising ``½‖x − a D‖² + λ‖a‖₁`` per pixel (SPAMS's lasso,
    mode 2), by coordinate descent vectorised over the pixels (K is 2 or 3: a few sweeps suffice)."""
    gram = dictionary @ dictionary.T
    correlation = od @ dictionary.T
    codes = np.zeros((len(od), len(dictionary)))
    for _ in range(iterations):
        for k in range(len(dictionary)):
            residual = correlation[:, k] - codes @ gram[:, k] + codes[:, k] * gram[k, k]
            codes[:, k] = np.maximum(residual - lambda_, 0.0) / max(gram[k, k], 1e-12)
    return codes


class NoTissueError(ValueError):
    """A tile with no pixel darker than background (NCT's BACK class, blank slide): Vahadane has
    nothing to learn its stain vectors from."""


def vahadane_separation(rgb: np.ndarray, lambda_: float = 0.01, luminosity_threshold: float = 0.9,
                        max_pixels: int = 20000, iterations: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vahadane stain separation of one H×W×3 image (uint8, or float in [0, 1]), without SPAMS.

    As the MMAE reference: brightness standardised to the 90th percentile; ``OD = ln(255 / I)``;
    tissue pixels are those with LAB lightness L/100 < ``luminosity_threshold``; a 2-atom
    non-negative dictionary of OD vectors learnt on them with the L1 weight ``lambda_`` (SPAMS's
    objective ``½‖x − a D‖² + λ‖a‖₁``, alternating :func:`nonnegative_lasso` codes with a
    non-negative least-squares dictionary step, from the Ruifrok H and E vectors; at most
    ``max_pixels`` tissue pixels, drawn with ``seed``); atoms unit-normalised, haematoxylin first
    (the atom with the larger red OD); concentrations of every pixel by non-negative lasso.
    Returns the 2×3 stain matrix (rows H, E) and the H×W×2 concentrations.
    """
    from skimage.color import rgb2lab

    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Vahadane separation needs an H×W×3 RGB image, got shape {image.shape}")
    image = image.astype(np.float64) * (255.0 if image.dtype.kind == "f" else 1.0)
    image = np.clip(image * 255.0 / max(np.percentile(image, 90), 1.0), 0, 255)
    od = -np.log(np.maximum(image, 1.0) / 255.0).reshape(-1, 3)
    tissue = rgb2lab(image / 255.0)[..., 0].reshape(-1) / 100.0 < luminosity_threshold
    if tissue.sum() < 2:
        raise NoTissueError("Vahadane separation: no tissue pixels (all as bright as background, LAB L/100 >= "
                         f"{luminosity_threshold}); use the Ruifrok method for such tiles or drop them")
    pixels = od[tissue]
    if len(pixels) > max_pixels:
        pixels = pixels[np.random.default_rng(seed).choice(len(pixels), max_pixels, replace=False)]
    dictionary = RGB_FROM_HED[:2] / np.linalg.norm(RGB_FROM_HED[:2], axis=1, keepdims=True)
    for _ in range(iterations):
        codes = nonnegative_lasso(pixels, dictionary, lambda_, iterations=20)
        used = codes.sum(0) > 0  # an unused atom keeps its value rather than collapsing to zero
        solved = np.linalg.lstsq(codes[:, used], pixels, rcond=None)[0]
        dictionary[used] = np.maximum(solved, 0.0)
        dictionary = dictionary / np.maximum(np.linalg.norm(dictionary, axis=1, keepdims=True), 1e-12)
    if dictionary[0, 0] < dictionary[1, 0]:
        dictionary = dictionary[[1, 0]]
    concentrations = nonnegative_lasso(od, dictionary, lambda_)
    return dictionary, concentrations.reshape(*image.shape[:2], 2)


class StainSeparation:
    """The registered transform ``pathology_stain_separation``: an RGB tile (3×H×W in [0, 1]) →
    the tile with its haematoxylin and eosin images appended (5×H×W: r, g, b, H, E), the stain
    images truncated-standardised per image (MMAE's inputs). ``method`` is ``"ruifrok"`` (fixed
    matrix, fast) or ``"vahadane"`` (learnt per image; cache it). Also takes a batch (B×3×H×W).

    A tile without tissue gives Vahadane nothing to learn from: ``no_tissue="ruifrok"`` (default)
    separates it with the fixed Ruifrok vectors instead and counts it in ``ruifrok_fallbacks``;
    ``"raise"`` stops with :class:`NoTissueError`."""

    METHODS = ("ruifrok", "vahadane")

    def __init__(self, method: str = "ruifrok", eps: float = DEFAULT_EPS, no_tissue: str = "ruifrok",
                 **vahadane_options: Any) -> None:
        if method not in self.METHODS:
            raise ValueError(f"stain method must be one of {self.METHODS}, got {method!r}")
        if vahadane_options and method != "vahadane":
            raise ValueError(f"options {sorted(vahadane_options)} apply to method='vahadane' only")
        if no_tissue not in ("ruifrok", "raise"):
            raise ValueError(f"no_tissue must be 'ruifrok' or 'raise', got {no_tissue!r}")
        self.method, self.eps, self.no_tissue, self.vahadane_options = method, eps, no_tissue, vahadane_options
        self.ruifrok_fallbacks = 0

    def _vahadane(self, image: torch.Tensor) -> torch.Tensor:
        """2×H×W concentrations of one 3×H×W image."""
        try:
            concentrations = vahadane_separation(image.permute(1, 2, 0).numpy(), **self.vahadane_options)[1]
        except NoTissueError:
            if self.no_tissue == "raise":
                raise
            self.ruifrok_fallbacks += 1
            return ruifrok_concentrations(image, self.eps)[:2].float()
        return torch.from_numpy(concentrations).permute(2, 0, 1).float()

    def stains(self, rgb: torch.Tensor) -> torch.Tensor:
        """The two standardised stain images (…×2×H×W) of RGB images (…×3×H×W)."""
        _check_rgb(rgb)
        if self.method == "ruifrok":
            concentrations = ruifrok_concentrations(rgb, self.eps)[..., :2, :, :]
        else:
            flat = rgb.reshape(-1, 3, *rgb.shape[-2:])
            concentrations = torch.stack([self._vahadane(image) for image in flat.detach().cpu()])
            concentrations = concentrations.reshape(*rgb.shape[:-3], 2, *rgb.shape[-2:]).to(rgb.device)
        return stain_images(concentrations.to(rgb.dtype))

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        return torch.cat([rgb, self.stains(rgb)], dim=-3)

    def __repr__(self) -> str:
        return f"StainSeparation(method={self.method!r})"
