"""Tokenizers: images → grids of discrete ids from a vocabulary (a colour palette, a VQ codebook, a
dVAE), the targets of masked and autoregressive token prediction (iGPT, BEiT, PeCo).

A tokenizer is frozen while the method trains. A trainable one (a palette, a codebook) is fitted
once, on the run's own training images, before the first step (the engine's
``MaekitTokenizerFitHook`` calls :func:`fit_tokenizers`); its fitted state lives in buffers, so it
is saved with every checkpoint, restored on resume and read back by probe, visualize and export.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch
from torch import nn

__all__ = ["Tokenizer", "tokenizers_in", "fit_tokenizers", "share_fitted_tokenizers", "batch_view"]


class Tokenizer(nn.Module):
    """The contract every tokenizer keeps.

    - ``vocab_size``: the number of ids.
    - :meth:`grid`: the id grid (gh, gw) an image of (height, width) becomes.
    - :meth:`encode`: images (B×C×H×W, as the batch holds them under :attr:`view`) → ids B×gh×gw
      (long, row-major, no gradient).
    - :meth:`decode` (optional): ids → images in the same normalisation as the input.
    - trainable ones: :attr:`fitted` is False until :meth:`fit` has seen images.
    """

    vocab_size: int
    #: the batch entry the tokenizer reads ("inputs"; BEiT's tokenizer reads its own smaller view)
    view: str = "inputs"
    #: how many training images a trainable tokenizer is fitted on (at most)
    fit_samples: int = 0
    #: whether the training engine hands :meth:`fit` its images in a seeded random order (a VQ-VAE
    #: fitted on part of a class-sorted folder must see every class) rather than in dataset order
    fit_shuffle: bool = False

    @property
    def fitted(self) -> bool:
        """False for a trainable tokenizer not yet fitted (encoding with it is an error)."""
        return True

    def grid(self, height: int, width: int) -> tuple[int, int]:
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no decoder")

    def view_of(self, pixels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """This tokenizer's :attr:`view` of images with pixels in [0, 1] (B×C×H×W), sized for ids on
        ``grid``: for pictures and evaluation, where no training transform made it. Here: the
        images as they are (a tokenizer of the batch's own ``inputs``)."""
        return pixels

    def fit(self, images: Iterable[torch.Tensor], seed: int = 0) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not trainable")

    def fit_dataset(self, dataset: Any, seed: int = 0) -> bool:
        """Fit from the training dataset itself when it holds what this tokenizer learns from
        without reading every sample (a caption list, read without decoding any clip); False
        (here) to be fitted from batches by :meth:`fit` instead."""
        return False

    def save_fitted(self, folder: Path) -> list[Path]:
        """Write the fitted state in its field's own file format next to the run (e.g. iGPT's
        ``kmeans_centers.npy`` layout); the files written. Nothing here."""
        return []

    def check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError(f"{type(self).__name__} has not been fitted: train with maekit train (which fits it on the "
                             f"training images first) or load a checkpoint or file that holds it")


def tokenizers_in(module: nn.Module) -> Iterator[tuple[str, Tokenizer]]:
    """Every tokenizer inside ``module``, with its name (outermost first; one inside another is
    skipped; ``module`` itself when it is one, named ""). A method whose patchifier and target
    each build a tokenizer has two (each fitted on its own): share one instance to fit it once."""
    if isinstance(module, Tokenizer):
        yield "", module
        return
    seen: list[str] = []
    for name, child in module.named_modules():
        if isinstance(child, Tokenizer) and not any(name.startswith(f"{outer}.") for outer in seen):
            seen.append(name)
            yield name, child


def fit_tokenizers(module: nn.Module, batches: Iterable[dict], seed: int = 0, dataset: Any = None) -> list[str]:
    """Fit every trainable tokenizer of ``module`` that is not fitted yet: from ``dataset`` where
    the tokenizer can (:meth:`~Tokenizer.fit_dataset`), else on the images of ``batches`` (each a
    dict holding the tokenizer's :attr:`~Tokenizer.view`, at most ``fit_samples`` images); the
    names fitted. ``batches`` is read once per tokenizer: give a re-iterable (a DataLoader)."""
    fitted = []
    for name, tokenizer in tokenizers_in(module):
        if tokenizer.fitted:
            continue
        if dataset is None or not tokenizer.fit_dataset(dataset, seed=seed):
            tokenizer.fit(_images(batches, tokenizer.view, tokenizer.fit_samples), seed=seed)
        fitted.append(name)
    return fitted


def share_fitted_tokenizers(source: nn.Module, target: nn.Module) -> list[str]:
    """Give ``target``'s unfitted tokenizers the fitted state of ``source``'s of the same name (an
    untrained baseline of a method keeps the trained run's vocabulary: a palette is preprocessing
    fitted on the data, not a learned feature); the names shared."""
    fitted = dict(tokenizers_in(source))
    shared = []
    for name, tokenizer in tokenizers_in(target):
        if not tokenizer.fitted and name in fitted and fitted[name].fitted:
            tokenizer.load_state_dict(fitted[name].state_dict())
            shared.append(name)
    return shared


def batch_view(batch: Any, view: str) -> Any:
    """What a tokenizer reads from a batch: ``batch[view]`` (images, or a caption tokenizer's list of
    strings), else ``batch["views"][view]`` (a ``views`` transform's named views, BEiT's tokenizer
    view); a bare tensor for ``view="inputs"``; None when the batch holds no such entry."""
    if isinstance(batch, torch.Tensor):
        return batch if view == "inputs" else None
    if not isinstance(batch, Mapping):
        return None
    found = batch.get(view)
    if found is None and isinstance(batch.get("views"), Mapping):
        found = batch["views"].get(view)
    return found


def _images(batches: Iterable[dict], view: str, limit: int) -> Iterator[torch.Tensor]:
    taken = 0
    for batch in batches:
        found = batch_view(batch, view)
        if found is None:
            gives = ", ".join(map(str, batch)) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(f"the tokenizer reads batch[{view!r}], which the training data does not give "
                             f"(it gives {gives})")
        images = found[: max(limit - taken, 0)] if limit else found
        taken += len(images)
        yield images
        if limit and taken >= limit:
            return
