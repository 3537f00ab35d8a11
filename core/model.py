"""``MaskedAutoencoder``: the one forward pass every method shares."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from maekit.components.base import Decoder, Encoder, Loss, Masker, Patchifier, Target
from maekit.registry import build
from maekit.structures import Mask, Tokens

__all__ = ["MaskedAutoencoder", "build_model"]

ComponentSpec = nn.Module | dict[str, Any]


class MaskedAutoencoder(nn.Module):
    """A masked autoencoder composed of registered components.

    patchify → target and mask → encode visible tokens → decode all tokens → loss. Each component
    may be given built or as a config ``{"type": registered_name, ...}``. A method whose pipeline
    differs subclasses this and overrides the one step that differs (e.g. ``encode_visible`` for
    input-domain corruption; :meth:`auxiliary_losses` for an extra term from the same pass);
    :meth:`run_steps` reads the whole pass top to bottom.
    """

    def __init__(self, patchifier: ComponentSpec, masker: ComponentSpec, encoder: ComponentSpec,
                 decoder: ComponentSpec, target: ComponentSpec, loss: ComponentSpec) -> None:
        super().__init__()
        self.patchifier: Patchifier = build("patchifier", patchifier)
        self.masker: Masker = build("masker", masker)
        self.encoder: Encoder = build("encoder", encoder)
        self.decoder: Decoder = build("decoder", decoder)
        self.target: Target = build("target", target)
        self.loss: Loss = build("loss", loss)

    # -- the steps, each overridable --------------------------------------------------------
    def tokenize(self, batch: Any) -> Tokens:
        return self.patchifier(batch)

    def make_target(self, tokens: Tokens, batch: Any) -> torch.Tensor:
        return self.target(tokens, batch)

    def make_mask(self, tokens: Tokens, noise: torch.Tensor | None = None) -> Mask:
        return self.masker(tokens, noise=noise)

    def encode_visible(self, tokens: Tokens, mask: Mask) -> torch.Tensor:
        return self.encoder(tokens.take(mask.ids_keep))

    def decode(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        return self.decoder(latents, mask, tokens)

    def compute_loss(self, pred: torch.Tensor, target: torch.Tensor, mask: Mask) -> dict[str, torch.Tensor]:
        return self.loss(pred, target, mask)

    def auxiliary_losses(self, batch: Any, latents: torch.Tensor, mask: Mask, tokens: Tokens,
                         pred: Any) -> dict[str, torch.Tensor]:
        """Extra terms from the same pass, e.g. a supervised head on the visible latents (SupMAE),
        a second objective (FLIP's reconstruction ablation) or self-distillation of the decoder's
        ``pred`` into the encoder (SD-MAE): ``{"loss": weighted total to add, "<term>": value,
        ...}``, or ``{}`` (here)."""
        return {}

    # -- the pass ---------------------------------------------------------------------------
    def run_steps(self, batch: Any, noise: torch.Tensor | None = None) -> tuple[Tokens, torch.Tensor, Mask, torch.Tensor, torch.Tensor]:
        """The whole pass, top to bottom: tokens, target, mask, latents and prediction."""
        tokens = self.tokenize(batch)
        target = self.make_target(tokens, batch)
        mask = self.make_mask(tokens, noise)
        latents = self.encode_visible(tokens, mask)
        pred = self.decode(latents, mask, tokens)
        return tokens, target, mask, latents, pred

    def reconstruct(self, batch: Any, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, Mask, torch.Tensor]:
        """Prediction (B×N×Dt), the mask used, and the target, for one batch."""
        _, target, mask, _, pred = self.run_steps(batch, noise)
        return pred, mask, target

    def forward(self, batch: Any, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Losses for one batch: ``{"loss": total, "<term>": value, ...}``."""
        tokens, target, mask, latents, pred = self.run_steps(batch, noise)
        losses = self.compute_loss(pred, target, mask)
        extra = self.auxiliary_losses(batch, latents, mask, tokens, pred)
        if extra:
            losses = {**losses, **extra, "loss": losses["loss"] + extra["loss"]}
        return losses

    def encode(self, batch: Any, mask: Mask | None = None) -> torch.Tensor:
        """Encoder features B×(P+N)×D for downstream use; no masking unless ``mask`` is given."""
        tokens = self.tokenize(batch)
        return self.encoder(tokens if mask is None else tokens.take(mask.ids_keep))

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """Picture rows for ``maekit visualize`` and the demo (H×W×C uint8 panels per image):
        input | masked | reconstruction | reconstruction with visible patches, masks seeded by
        ``seed``. A method whose corruption is not a token mask overrides this."""
        from maekit.visualize import reconstruction_panels

        noise = torch.rand(len(images), self.tokenize(images).num_tokens, generator=torch.Generator().manual_seed(seed))
        return reconstruction_panels(self, images, mean, std, noise=noise)


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """Build a registered model (method) from ``{"type": name, ...}``."""
    return build("model", cfg)
