"""``MaskedAutoencoder``: the one forward pass every method shares."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence, Union

import torch
from torch import nn

from maekit.nn.base import Decoder, Encoder, Loss, Masker, NoiseSource, Patchifier, Target
from maekit.registry import build
from maekit.structures import ForwardPass, Mask, Prediction, Tokens

__all__ = ["MaskedAutoencoder", "MaskTokenModel", "ComponentSpec", "build_model", "seeded_noise", "noise_for_views"]

ComponentSpec = Union[nn.Module, dict[str, Any]]


class MaskedAutoencoder(nn.Module):
    """A masked autoencoder composed of registered components.

    patchify → mask → target → encode visible tokens → decode all tokens → loss. Each component
    may be given built or as a config ``{"type": registered_name, ...}``. A method whose pipeline
    differs subclasses this and overrides the one step that differs (e.g. :meth:`encoder_input`
    for input-domain corruption; :meth:`auxiliary_losses` for an extra term from the same pass);
    :meth:`run_steps` reads the whole pass top to bottom and returns a :class:`ForwardPass`.
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

    def make_target(self, tokens: Tokens, batch: Any, mask: Mask | None = None) -> Prediction:
        """The target; a target that reads the mask (a teacher fed the removed tokens) gets it."""
        return self.target.for_pass(tokens, batch, mask)

    def make_mask(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        return self.masker(tokens, noise=noise)

    def encoder_input(self, batch: Any, tokens: Tokens, mask: Mask) -> Tokens:
        """What the encoder sees: the visible tokens. A method that corrupts its input instead of
        dropping tokens (MFM) returns the tokens of the corrupted input here."""
        if mask.variable_count:
            raise ValueError(f"the masker {type(self.masker).__name__} removes a different number of tokens per "
                             f"sample, which an encoder of visible tokens cannot batch; use it with mask tokens "
                             f"inside the encoder (MaskTokenModel, e.g. MaskFeat, BEiT)")
        return tokens.take(mask.ids_keep)

    #: State-dict prefixes of parts trained beside the encoder only for pre-training (a method's
    #: projection heads, EMA copies, memory banks): an encoder-only file (``maekit export``, an
    #: official release) loads without them, as it does without the decoder.
    pretraining_only: tuple[str, ...] = ()

    #: Encoder states (block indices, as ``forward_intermediates`` counts them) that
    #: :meth:`encode_visible` keeps for the decoder, e.g. BootMAE's first and last blocks.
    encoder_taps: tuple[int, ...] = ()

    def encode_visible(self, visible: Tokens) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Latents of the encoder input and the states at :attr:`encoder_taps` (before the final
        norm), ``{}`` when no taps are asked for."""
        if not self.encoder_taps:
            return self.encoder(visible), {}
        encoder: Any = self.encoder  # a TokenEncoder: forward_intermediates, norm, resolve_tap
        found = encoder.forward_intermediates(visible, [*self.encoder_taps, -1]).features
        return encoder.norm(found[max(found)]), {t: found[encoder.resolve_tap(t)] for t in self.encoder_taps}

    def decode(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
               taps: dict[int, torch.Tensor] | None = None) -> Prediction:
        """The prediction; a decoder that reads encoder states overrides this to pass ``taps``."""
        return self.decoder(latents, mask, tokens)

    def compute_loss(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        return self.loss(out.pred, out.target, out.mask)

    def auxiliary_losses(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        """Extra terms from the same pass, e.g. a supervised head on the visible latents (SupMAE),
        a second objective (FLIP's reconstruction ablation) or self-distillation of the decoder's
        prediction into the encoder (SD-MAE): ``{"loss": weighted total to add, "<term>": value,
        ...}``, or ``{}`` (here)."""
        return {}

    # -- the pass ---------------------------------------------------------------------------
    def run_steps(self, batch: Any, noise: NoiseSource = None, masker: Masker | None = None) -> ForwardPass:
        """The whole pass, top to bottom. ``masker``: one other than the model's own for this pass
        (MACRL's second branch masks at its own ratio)."""
        tokens = self.tokenize(batch)
        mask = self.make_mask(tokens, noise) if masker is None else masker(tokens, noise=noise)
        target = self.make_target(tokens, batch, mask)
        latents, taps = self.encode_visible(self.encoder_input(batch, tokens, mask))
        pred = self.decode(latents, mask, tokens, taps)
        return ForwardPass(batch=batch, tokens=tokens, target=target, mask=mask, latents=latents, pred=pred, taps=taps)

    def forward(self, batch: Any, noise: NoiseSource = None) -> dict[str, torch.Tensor]:
        """Losses for one batch: ``{"loss": total, "<term>": value, ...}``."""
        out = self.run_steps(batch, noise)
        losses = self.compute_loss(out)
        extra = self.auxiliary_losses(out)
        if extra:
            losses = {**losses, **extra, "loss": losses["loss"] + extra["loss"]}
        return losses

    def reconstruct(self, batch: Any, noise: NoiseSource = None) -> tuple[Prediction, Mask, Prediction]:
        """Prediction (B×N×Dt), the mask used, and the target, for one batch."""
        out = self.run_steps(batch, noise)
        return out.pred, out.mask, out.target

    def encode(self, batch: Any, mask: Mask | None = None) -> torch.Tensor:
        """Encoder features B×(P+N)×D for downstream use; no masking unless ``mask`` is given."""
        tokens = self.tokenize(batch)
        return self.encoder(tokens if mask is None else tokens.take(mask.ids_keep))

    def encode_layer(self, batch: Any, layer: int) -> torch.Tensor:
        """Features B×(P+N)×D after encoder block ``layer`` (1..depth, negative from the end; 0 the
        embeddings) over every token, layer-normalised without affine: the intermediate features a
        probe of a middle layer reads (iGPT's best probe layer is not the last; BEiT's per-layer
        probes)."""
        encoder: Any = self.encoder
        if type(self).encode is not MaskedAutoencoder.encode:  # its own encode (padding, bodies) would be skipped
            raise ValueError(f"{type(self).__name__} encodes its inputs in its own way and gives no intermediate layer; "
                             f"probe its output instead (no layer)")
        if not hasattr(encoder, "forward_intermediates"):
            raise ValueError(f"{type(encoder).__name__} does not give intermediate layers; probe its output instead "
                             f"(no layer)")
        depth = len(encoder.blocks)
        try:
            tap = encoder.resolve_tap(layer) if isinstance(layer, int) else None
        except ValueError:
            tap = None
        if tap is None:
            raise ValueError(f"probe layer {layer!r} is outside the encoder's {depth} blocks (1..{depth}, or negative "
                             f"from the end)")
        state = encoder.forward_intermediates(self.tokenize(batch), [tap]).features[tap]
        return nn.functional.layer_norm(state.float(), state.shape[-1:])

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """Picture rows for ``maekit visualize`` and the demo (H×W×C uint8 panels per image):
        input | masked | reconstruction | reconstruction with visible patches, masks seeded by
        ``seed``. A method whose corruption is not a token mask overrides this."""
        from maekit.eval.visualize import reconstruction_panels

        self.eval()
        return reconstruction_panels(self, self.run_steps(images, noise=seeded_noise(seed)), mean, std)

    def panel_titles(self) -> Any:
        """The labels of :meth:`panels`' columns (or rows), a :class:`~maekit.eval.visualize.PanelTitles`:
        a method that overrides ``panels`` overrides this with its own."""
        from maekit.eval.visualize import reconstruction_titles

        return reconstruction_titles(self.target)


class MaskTokenModel(MaskedAutoencoder):
    """Masked modelling with the mask tokens inside the encoder (BEiT, MaskFeat): the encoder sees
    every token, the removed ones' embeddings replaced by its learned mask token (``meta["masked"]``,
    see :meth:`~maekit.nn.encoder.TokenEncoder.embed`); a head (``linear_head``) predicts the
    target of every token and the loss reads the removed ones. Rows may remove different counts."""

    def encoder_input(self, batch: Any, tokens: Tokens, mask: Mask) -> Tokens:
        if mask.thrown is not None:
            raise ValueError(f"{type(self).__name__}'s encoder sees every token and cannot drop thrown ones (a masker "
                             f"with throw_ratio > 0)")
        return replace(tokens, meta={**tokens.meta, "masked": mask.masked})


def seeded_noise(seed: int) -> Callable[[tuple[int, ...], torch.device], torch.Tensor]:
    """A noise source (see :data:`~maekit.nn.base.NoiseSource`) drawing uniform noise of whatever
    shape the masker asks for from a generator seeded by ``seed``: the same pictures every time."""
    def draw(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(device)

    return draw


def noise_for_views(noise: NoiseSource, views: int) -> list[Callable[[tuple[int, ...], torch.device], torch.Tensor]]:
    """Masking noise for ``views`` passes over the same samples: source ``k`` gives rows ``k::views``
    of one draw of ``views·B`` rows (sample-major, the training engine's convention for several
    views of a sample: view 0 draws what a single view would), drawn once and reused. One view:
    the same mask for every pass that asks (SDMAE's two views share a mask); two: independent
    masks per branch (MACRL)."""
    drawn: dict[tuple[int, ...], torch.Tensor] = {}

    def source(view: int) -> Callable[[tuple[int, ...], torch.device], torch.Tensor]:
        def draw(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
            if shape not in drawn:
                from maekit.nn.masking import draw_noise

                drawn[shape] = draw_noise((shape[0] * views, *shape[1:]), noise, device)
            return drawn[shape][view::views]
        return draw

    return [source(view) for view in range(views)]


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """Build a registered model (method) from ``{"type": name, ...}``."""
    return build("model", cfg)
