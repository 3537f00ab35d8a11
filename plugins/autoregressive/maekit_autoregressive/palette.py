"""iGPT's colour palette: k-means centres of the training images' pixels (RGB scaled to [−1, 1]);
an image becomes the grid of its pixels' nearest centres, and a grid of ids decodes back to colours."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from maekit.io.checkpoint import write_bytes
from maekit.nn.base import Patchifier
from maekit.nn.tokenizers import Tokenizer
from maekit.structures import Tokens

__all__ = ["PaletteTokenizer", "PalettePixels", "PALETTE_FILE"]

#: the file a fitted palette is written to, in the layout of iGPT's ``kmeans_centers.npy`` (K×C)
PALETTE_FILE = "palette.npy"


class PaletteTokenizer(Tokenizer):
    """A palette of ``num_colors`` centres over ``channels`` (iGPT: 512 over RGB, its "9-bit"
    palette). Pixels must lie in [−1, 1] (the config normalises with mean 0.5, std 0.5, as iGPT
    scales RGB); each pixel's id is its nearest centre in squared distance (iGPT's
    ``color_quantize``); ids decode to the centres' colours.

    Fitted by :meth:`fit` with scikit-learn's ``MiniBatchKMeans`` on up to ``fit_pixels`` pixels
    drawn from the first ``fit_samples`` training images, or loaded from ``centres_file`` (a K×C
    ``.npy``, e.g. iGPT's released ``kmeans_centers.npy``). The centres are a buffer: every
    checkpoint holds them."""

    centres: torch.Tensor
    is_fitted: torch.Tensor

    def __init__(self, num_colors: int = 512, channels: int = 3, centres_file: str | None = None,
                 fit_samples: int = 5000, fit_pixels: int = 200_000) -> None:
        super().__init__()
        if not isinstance(num_colors, int) or num_colors < 2:
            raise ValueError(f"palette num_colors must be an int ≥ 2, got {num_colors!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"palette channels must be a positive int, got {channels!r}")
        self.vocab_size, self.channels = num_colors, channels
        self.fit_samples, self.fit_pixels = int(fit_samples), int(fit_pixels)
        self.register_buffer("centres", torch.zeros(num_colors, channels))
        self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))
        if centres_file is not None:
            self.load_centres(centres_file)

    @property
    def fitted(self) -> bool:
        return bool(self.is_fitted)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return height, width  # one id per pixel

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """B×C×H×W → B×H×W×C, after checking channels and range."""
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ValueError(f"the palette has {self.channels} channel(s); got images of shape {tuple(images.shape)} "
                             f"(expected B×{self.channels}×H×W)")
        low, high = (float(v) for v in torch.aminmax(images))  # one device sync
        if low < -1.001 or high > 1.001:
            raise ValueError(f"the palette quantises pixels in [-1, 1] (iGPT's scaling); these lie in [{low:.3f}, "
                             f"{high:.3f}] — normalise with mean 0.5 and std 0.5 per channel")
        return images.permute(0, 2, 3, 1).float()

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        pixels = self._pixels(images)
        centres = self.centres.to(pixels.device)
        # |x|² − 2x·c + |c|², as iGPT's color_quantize; the nearest centre (first on ties). In float32
        # even under autocast: a bf16 product gives a different id to one pixel in ~8% (512 colours)
        with torch.autocast(pixels.device.type, enabled=False):
            distances = (pixels ** 2).sum(-1, keepdim=True) - 2 * pixels @ centres.T + (centres ** 2).sum(-1)
        return distances.argmin(-1)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids B×H×W → images B×C×H×W in [−1, 1]."""
        self.check_fitted()
        return self.centres.to(ids.device)[ids].permute(0, 3, 1, 2)

    def fit(self, images: Iterable[torch.Tensor], seed: int = 0) -> None:
        from sklearn.cluster import MiniBatchKMeans

        pixels = torch.cat([self._pixels(batch.detach().cpu()).reshape(-1, self.channels) for batch in images])
        if len(pixels) > self.fit_pixels:
            keep = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(seed))[: self.fit_pixels]
            pixels = pixels[keep]
        distinct = len(torch.unique(pixels, dim=0))
        if distinct < self.vocab_size:
            raise ValueError(f"a palette of {self.vocab_size} colours needs at least as many distinct pixel values; "
                             f"the training images give {distinct} — lower num_colors")
        kmeans = MiniBatchKMeans(n_clusters=self.vocab_size, random_state=seed, n_init=3, batch_size=4096)
        kmeans.fit(pixels.numpy().astype(np.float64))
        self.centres.copy_(torch.from_numpy(kmeans.cluster_centers_).to(self.centres))
        self.is_fitted.fill_(True)

    def load_centres(self, path: str | Path) -> None:
        """Centres from a K×C ``.npy`` (no pickles): ``Error`` naming the file when it does not fit."""
        try:
            centres = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable .npy array of palette centres ({error})") from None
        expected = (self.vocab_size, self.channels)
        if centres.shape != expected or not np.issubdtype(centres.dtype, np.floating):
            raise ValueError(f"{path}: palette centres must be a float array of shape {expected} (num_colors × "
                             f"channels), got {centres.dtype} {centres.shape}")
        if not np.isfinite(centres).all() or np.abs(centres).max() > 1.001:
            raise ValueError(f"{path}: palette centres must be finite colours in [-1, 1] (iGPT's scaling)")
        self.centres.copy_(torch.from_numpy(centres.astype(np.float32)))
        self.is_fitted.fill_(True)

    def save_fitted(self, folder: Path) -> list[Path]:
        buffer = io.BytesIO()
        np.save(buffer, self.centres.cpu().numpy())
        return [write_bytes(Path(folder) / PALETTE_FILE, buffer.getvalue())]


class PalettePixels(Patchifier):
    """Images → one token per pixel holding its palette id (values B×N×1 long, raster order;
    coords (row, column)). The inverse decodes ids to the palette's colours."""

    def __init__(self, tokenizer: Mapping[str, Any] | PaletteTokenizer | None = None) -> None:
        super().__init__()
        from maekit.registry import build

        self.tokenizer = build("tokenizer", dict(type="palette") if tokenizer is None else tokenizer)

    def forward(self, batch: Any) -> Tokens:
        images = batch[self.tokenizer.view] if isinstance(batch, Mapping) else batch
        ids = self.tokenizer.encode(images)
        return self.tokens_of(ids, int(images.shape[1]))

    @staticmethod
    def tokens_of(ids: torch.Tensor, channels: int) -> Tokens:
        """Tokens of an id grid B×H×W (completions build them from sampled ids)."""
        batch, height, width = ids.shape
        rows, cols = torch.meshgrid(torch.arange(height, device=ids.device), torch.arange(width, device=ids.device),
                                    indexing="ij")
        coords = torch.stack([rows, cols], -1).reshape(1, height * width, 2).expand(batch, -1, -1)
        return Tokens(values=ids.reshape(batch, height * width, 1), coords=coords,
                      meta={"grid_size": (height, width), "patch_size": (1, 1), "in_chans": channels})

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        height, width = meta["grid_size"]
        return self.tokenizer.decode(values[..., 0].long().reshape(-1, height, width))
