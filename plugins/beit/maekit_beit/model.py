"""BEiT and PeCo as core's pass: image patches → BEiT's blockwise mask (75 of 196, counts vary)
→ target = the tokenizer's ids of the image → the encoder sees every patch, the masked ones as its
mask token → ``lm_head`` over the vocabulary at the masked positions → cross-entropy averaged over
every masked token of the batch (the reference's ``nn.CrossEntropyLoss`` on ``x[mask]``).

PeCo is the same pre-training with its perceptual codebook as the tokenizer (:mod:`maekit_beit.vq`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskTokenModel
from maekit.nn.tokenizers import Tokenizer
from maekit.registry import build
from maekit_beit.encoder import BEIT_SIZES, BEiTEncoder, beit_init

__all__ = ["BEiT", "beit", "peco", "token_colours"]


def token_colours(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """A fixed colour per id (B×h×w → B×3×h×w in [0, 1]): the same id the same colour in every picture."""
    palette = torch.rand(vocab_size, 3, generator=torch.Generator().manual_seed(0))
    return palette[ids.cpu()].permute(0, 3, 1, 2)


class BEiT(MaskTokenModel):
    """BEiT's masked image modelling (see the module). :meth:`panels` draws image | token map |
    masked | predicted tokens, decoded to pixels where the tokenizer has a decoder."""

    @property
    def tokenizer(self) -> Any:
        return self.target.tokenizer  # type: ignore[union-attr]

    @property
    def can_decode(self) -> bool:
        """Whether the tokenizer turns ids back into pixels (a VQ tokenizer; not DALL-E's encoder)."""
        return type(self.tokenizer).decode is not Tokenizer.decode

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        from maekit.eval.visualize import denormalised_panels, uint8_panels
        from maekit.model import seeded_noise

        self.eval()
        batch: Any = images
        if self.tokenizer.view != "inputs":  # its own view (DALL-E's 112 px), made here from the pixels
            pixels = (images.float().cpu() * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1))
            small = self.tokenizer.view_of(pixels.clamp(0, 1), self.encoder.grid_size).to(images.device)
            batch = {"inputs": images, "views": {self.tokenizer.view: small}}
        out = self.run_steps(batch, noise=seeded_noise(seed))
        size = tuple(images.shape[-2:])
        grid = tuple(out.tokens.meta["grid_size"])
        ids = out.target.view(-1, *grid)
        predicted = torch.where(out.mask.masked.bool(), out.pred.argmax(-1), out.target).view_as(ids)
        removed = out.mask.masked.view(-1, 1, *grid).float()
        grey = torch.nn.functional.interpolate(removed, size=size, mode="nearest").bool()

        def map_of(token_ids: torch.Tensor) -> list[np.ndarray]:
            colours = token_colours(token_ids, self.tokenizer.vocab_size)
            return uint8_panels(torch.nn.functional.interpolate(colours, size=size, mode="nearest"))

        columns = [denormalised_panels(images, mean, std), map_of(ids), denormalised_panels(images, mean, std, grey)]
        if self.can_decode:
            decoded = self.tokenizer.decode(predicted)
            columns.append(denormalised_panels(torch.nn.functional.interpolate(decoded, size=size), mean, std))
        else:
            columns.append(map_of(predicted))
        return [list(row) for row in zip(*columns)]

    def panel_titles(self) -> PanelTitles:
        last = "predicted tokens, decoded" if self.can_decode else "predicted token map"
        return PanelTitles(columns=("input", "token map", "masked", last))


def beit(size: str | None = "base", img_size: int | Sequence[int] = 224, patch_size: int = 16, in_chans: int = 3,
         encoder: Mapping[str, Any] | None = None, tokenizer: Mapping[str, Any] | None = None,
         num_masking: int = 75, min_block: int = 16, max_block: int | None = None, exact_mask: bool = False,
         rel_pos: str = "shared", drop_path_rate: float = 0.1, init_std: float = 0.02) -> BEiT:
    """BEiT (defaults: ViT-B/16 at 224 px, DALL-E tokenizer, 75 masked patches in blocks of ≥ 16,
    one shared relative position table, layer scale 0.1, drop path 0.1). ``size`` "base" or
    "large" (γ 1e-5), or None with ``encoder=dict(embed_dim, depth, num_heads, init_values)``;
    ``exact_mask``: MMPretrain's exactly-75 masker."""
    if size is not None and size not in BEIT_SIZES:
        raise ValueError(f"beit size must be one of {', '.join(BEIT_SIZES)} or None (give encoder=dict(...)), got {size!r}")
    dim, depth, heads, gamma = BEIT_SIZES[size or "base"]
    settings = {**dict(embed_dim=dim, depth=depth, num_heads=heads, init_values=gamma), **(encoder or {})}
    built_encoder = BEiTEncoder(img_size, patch_size, in_chans, rel_pos=rel_pos, drop_path_rate=drop_path_rate,
                                init_std=init_std, **settings)
    built_tokenizer = build("tokenizer", dict(tokenizer or dict(type="dall_e")))
    model = BEiT(
        patchifier=dict(type="image_patches", patch_size=patch_size, in_chans=in_chans),
        masker=dict(type="blockwise_mask", num_masking=num_masking, min_block=min_block, max_block=max_block,
                    exact=exact_mask),
        encoder=built_encoder,
        decoder=dict(type="linear_head", encoder_dim=settings["embed_dim"], out_dim=built_tokenizer.vocab_size,
                     positions="removed"),
        target=dict(type="token_ids", tokenizer=built_tokenizer),
        loss=dict(type="masked_cross_entropy", over="removed", reduction="token_mean"),
    )
    beit_init(model.decoder, init_std)  # lm_head: truncated normal at ±1 std, zero bias, as the reference
    return model


def peco(tokenizer: Mapping[str, Any] | None = None, **options: Any) -> BEiT:
    """PeCo: BEiT pre-training on the perceptual codebook (``tokenizer`` = ``peco_vq`` options:
    ``perceptual=dict(checkpoint=...)`` to train it, or ``weights=`` a trained one)."""
    return beit(tokenizer={**(tokenizer or {}), "type": "peco_vq"}, **options)
