"""MCM (Zhang et al., WACV 2024): multimodal channel-mixing masked autoencoder. No code was
released; every setting the paper leaves open is an argument here, listed in the README.

The paper's mechanism: the modalities are fused early into one multi-channel image (5 channels:
R, G, B, depth, thermal), a channel-mixing step drops 2 of the 5 channels, a masked ViT encodes the
fused image with MAE's spatial masking, and two ViT decoders rebuild the two modalities, the
dropped channels included. Fine-tuning needs one modality (RGB).

Our reading (maekit's choices, as the method note gives them):

- channel mixing keeps ``keep`` = 3 of the C channels per sample, a subset drawn uniformly (the
  10 subsets of 5), stacked in their original order: the encoder is a standard 3-channel ViT, and
  plain RGB at fine-tuning is simply the subset {R, G, B};
- spatial masking is MAE's random masking (0.75) of the same patches in every channel;
- each decoder is MAE's (512 wide, 8 blocks); decoder ``rgb`` predicts channels 0–2 (p²·3 per
  patch; per-patch normalised pixels, ``norm_pix_rgb``), decoder ``dt`` channels 3–4 (p²·2, plain
  pixels: no norm-pix on depth and thermal);
- a (patch, channel) entry counts in the loss when the patch was masked OR the channel dropped:
  a dropped channel is rebuilt at every patch. Each decoder's MSE is averaged over its counted
  entries; the decoders' terms are summed.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from maekit.eval.visualize import PanelTitles, denormalised_panels
from maekit.methods.mae import build_vit_encoder
from maekit.model import MaskedAutoencoder, seeded_noise
from maekit.nn.base import Decoder, Loss, NoiseSource, Patchifier, Target
from maekit.nn.masking import RandomMasker, draw_noise
from maekit.nn.patchify import ImagePatchifier, as_pair, unpatchify
from maekit.ops import norm_pix
from maekit.registry import build
from maekit.structures import Mask, Prediction, Tokens

__all__ = ["OUTPUTS", "ChannelMixMask", "ChannelMixMasker", "ChannelPatchifier", "select_channels", "MCMDecoders",
           "MCMTargets", "MCMLoss", "MCM", "mcm", "loss_weights"]

#: The decoders' outputs: name → the channels (of R, G, B, depth, thermal) it rebuilds.
OUTPUTS: dict[str, tuple[int, ...]] = {"rgb": (0, 1, 2), "dt": (3, 4)}


@dataclass
class ChannelMixMask(Mask):
    """A spatial :class:`Mask` plus the channels each sample kept (``kept_channels``: B×C bool,
    ``keep`` True per row, in channel order); the others were dropped from the encoder's input."""

    kept_channels: torch.Tensor | None = None

    @property
    def kept_ids(self) -> torch.Tensor:
        """B×keep channel indices, ascending (the mixed image's channel order)."""
        assert self.kept_channels is not None
        keep = int(self.kept_channels[0].sum())
        return torch.argsort((~self.kept_channels).to(torch.uint8), dim=1, stable=True)[:, :keep]


class ChannelPatchifier(Patchifier):
    """MAE's patches of a C-channel fused image (values in (p, q, c) order); a batch with only the
    first ``downstream`` channels (RGB at fine-tuning) is patchified as it is. ``meta["channels"]``
    names the fused channels the tokens hold."""

    def __init__(self, patch_size: int | tuple[int, int] = 16, in_chans: int = 5, downstream: int = 3,
                 key: str = "inputs") -> None:
        super().__init__()
        if not 1 <= downstream <= in_chans:
            raise ValueError(f"downstream channels must be in [1, in_chans={in_chans}], got {downstream}")
        self.fused, self.plain = ImagePatchifier(patch_size, in_chans, key), ImagePatchifier(patch_size, downstream, key)
        self.patch_size, self.in_chans, self.downstream, self.key = self.fused.patch_size, in_chans, downstream, key

    def forward(self, batch: Any) -> Tokens:
        images = batch[self.key] if isinstance(batch, Mapping) else batch
        plain = isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[1] == self.downstream
        tokens = (self.plain if plain else self.fused)(batch)
        tokens.meta["channels"] = tuple(range(self.downstream if plain else self.in_chans))
        return tokens

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return unpatchify(values, meta["grid_size"], meta["patch_size"])


def select_channels(values: torch.Tensor, channels: int, kept: torch.Tensor) -> torch.Tensor:
    """Token values B×N×(p·q·C) in (p, q, c) order → the ``kept`` channels (B×k ids) only,
    B×N×(p·q·k), still in (p, q, c) order."""
    batch, num, width = values.shape
    per_channel = values.view(batch, num, width // channels, channels)
    index = kept[:, None, None, :].expand(batch, num, width // channels, kept.shape[1])
    return torch.gather(per_channel, 3, index).reshape(batch, num, -1)


class ChannelMixMasker(RandomMasker):
    """MAE's random spatial masking plus MCM's channel mixing: per sample one subset of ``keep`` of
    the ``channels`` channels, uniformly among ``subsets`` (default: all C-choose-keep, 10 of 5).
    Noise B×(N + 1): one per token (the spatial mask, as :class:`RandomMasker`) and one per sample
    picking the subset. Tokens holding fewer channels (RGB alone) keep them all."""

    def __init__(self, mask_ratio: float = 0.75, channels: int = 5, keep: int = 3,
                 subsets: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__(mask_ratio)
        if not 1 <= keep <= channels:
            raise ValueError(f"keep must be in [1, channels={channels}], got {keep}")
        chosen = [tuple(sorted(s)) for s in (subsets or itertools.combinations(range(channels), keep))]
        if any(len(s) != keep or len(set(s)) != keep or not set(s) <= set(range(channels)) for s in chosen):
            raise ValueError(f"subsets must each name {keep} distinct channels of 0..{channels - 1}, got {subsets!r}")
        self.channels, self.keep = channels, keep
        table = torch.zeros(len(chosen), channels, dtype=torch.bool)
        for row, subset in enumerate(chosen):
            table[row, list(subset)] = True
        self.register_buffer("subsets", table, persistent=False)

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        return (tokens.batch_size, tokens.num_tokens + 1)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> ChannelMixMask:
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device, names="(batch, tokens + 1)")
        spatial = Mask.from_order(torch.argsort(noise[:, :-1], dim=1), self.visible_count(tokens.num_tokens))
        held = len(tokens.meta.get("channels", range(self.channels)))
        if held == self.channels:
            pick = (noise[:, -1] * len(self.subsets)).long().clamp(max=len(self.subsets) - 1)
            kept = self.subsets[pick]
        else:  # a downstream batch (RGB alone): nothing to drop
            kept = torch.ones(tokens.batch_size, held, dtype=torch.bool, device=tokens.values.device)
        return ChannelMixMask(spatial.ids_keep, spatial.ids_restore, spatial.masked, kept_channels=kept)

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, channels={self.channels}, keep={self.keep}, subsets={len(self.subsets)}"


class MCMDecoders(Decoder):
    """One MAE decoder per output (``outputs``: name → channels), each predicting p·q·c values per
    token of its channels; returns ``{name: B×N×(p·q·c)}``."""

    def __init__(self, encoder_dim: int, patch_size: int | tuple[int, int], grid_size: int | tuple[int, int],
                 outputs: Mapping[str, Sequence[int]] = OUTPUTS, embed_dim: int = 512, depth: int = 8,
                 num_heads: int = 16, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        area = int(np.prod(as_pair(patch_size, "patch_size")))
        self.outputs = {name: tuple(int(c) for c in channels) for name, channels in outputs.items()}
        self.decoders = nn.ModuleDict({
            name: build("decoder", dict(type="mae_decoder", encoder_dim=encoder_dim, out_dim=area * len(channels),
                                        grid_size=grid_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                                        mlp_ratio=mlp_ratio))
            for name, channels in self.outputs.items()})

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> dict[str, torch.Tensor]:
        return {name: decoder(latents, mask, tokens) for name, decoder in self.decoders.items()}


class MCMTargets(Target):
    """Each output's channels of the fused tokens (``{name: B×N×(p·q·c)}``), per-patch normalised
    for the outputs named in ``norm_pix`` (MAE's norm-pix; RGB by default, never depth/thermal)."""

    def __init__(self, outputs: Mapping[str, Sequence[int]] = OUTPUTS, norm_pix: Sequence[str] = ("rgb",),
                 channels: int = 5) -> None:
        super().__init__()
        self.outputs = {name: tuple(int(c) for c in chans) for name, chans in outputs.items()}
        unknown = sorted(set(norm_pix) - set(self.outputs))
        if unknown:
            raise ValueError(f"norm_pix names {unknown}, which are not among the outputs {sorted(self.outputs)}")
        self.norm_pix, self.channels = tuple(norm_pix), channels

    def forward(self, tokens: Tokens, batch: Any = None) -> dict[str, torch.Tensor]:
        held = len(tokens.meta.get("channels", range(self.channels)))
        if held != self.channels:
            raise ValueError(f"MCM pre-trains on the fused {self.channels}-channel image; got tokens of {held} channels")
        out = {}
        for name, chans in self.outputs.items():
            kept = torch.tensor(chans, device=tokens.values.device).expand(tokens.batch_size, -1)
            values = select_channels(tokens.values, self.channels, kept)
            out[name] = norm_pix(values) if name in self.norm_pix else values
        return out

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError("MCM's pictures are drawn by MCM.panels (one column per modality)")


def loss_weights(mask: ChannelMixMask, channels: Sequence[int]) -> torch.Tensor:
    """B×N×c: 1 where a (patch, channel) entry counts — the patch was masked or the channel dropped."""
    assert mask.kept_channels is not None
    dropped = ~mask.kept_channels[:, list(channels)]  # B×c
    return torch.maximum(mask.masked[:, :, None].float(), dropped[:, None, :].float())


class MCMLoss(Loss):
    """MCM's loss: per output, the squared error averaged over the counted (patch, channel)
    entries (:func:`loss_weights`; every pixel of an entry), the outputs' terms summed.
    Returns ``{"loss": Σ, "<output>": term}``."""

    def __init__(self, outputs: Mapping[str, Sequence[int]] = OUTPUTS) -> None:
        super().__init__()
        self.outputs = {name: tuple(int(c) for c in chans) for name, chans in outputs.items()}

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        if not isinstance(mask, ChannelMixMask) or not isinstance(pred, dict) or not isinstance(target, dict):
            raise TypeError("MCMLoss compares named outputs under a ChannelMixMask (from the channel_mix masker)")
        terms = {}
        for name, chans in self.outputs.items():
            error = (pred[name].float() - target[name].float()) ** 2
            batch, num, width = error.shape
            per_entry = error.view(batch, num, width // len(chans), len(chans)).mean(dim=2)  # B×N×c
            weights = loss_weights(mask, chans)
            terms[name] = (per_entry * weights).sum() / weights.sum().clamp(min=1)
        return {"loss": sum(terms.values()), **terms}  # type: ignore[dict-item]


class MCM(MaskedAutoencoder):
    """MCM's pass: the fused C-channel tokens, a spatial + channel mask (:class:`ChannelMixMasker`),
    the encoder sees the visible patches of the kept channels (a ``keep``-channel ViT), the
    decoders rebuild each output's channels (:class:`MCMDecoders`, :class:`MCMLoss`). Downstream
    (``encode``, fine-tuning) the encoder reads RGB patches as they are; a fused batch is cut to
    its first ``keep`` channels."""

    masker: ChannelMixMasker

    def encoder_input(self, batch: Any, tokens: Tokens, mask: Mask) -> Tokens:
        if not isinstance(mask, ChannelMixMask) or mask.kept_channels is None:
            raise TypeError("MCM needs the channel_mix masker (its mask says which channels each sample kept)")
        held = len(tokens.meta.get("channels", ()))
        mixed = select_channels(tokens.values, held, mask.kept_ids)
        return Tokens(values=mixed, coords=tokens.coords, meta=tokens.meta).take(mask.ids_keep)

    def downstream_tokens(self, batch: Any) -> Tokens:
        tokens = self.tokenize(batch)
        held, keep = len(tokens.meta["channels"]), self.masker.keep
        if held == keep:
            return tokens
        first = torch.arange(keep, device=tokens.values.device).expand(tokens.batch_size, -1)
        return Tokens(values=select_channels(tokens.values, held, first), coords=tokens.coords, meta=tokens.meta)

    def encode(self, batch: Any, mask: Mask | None = None) -> torch.Tensor:
        tokens = self.downstream_tokens(batch)
        return self.encoder(tokens if mask is None else tokens.take(mask.ids_keep))

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """Per image: RGB | the encoder's masked, mixed input (dropped channels black, removed
        patches grey) | RGB reconstruction | then, per other output, each channel and its
        reconstruction (depth, thermal)."""
        self.eval()
        out = self.run_steps(images, noise=seeded_noise(seed))
        tokens, mask = out.tokens, out.mask
        assert isinstance(mask, ChannelMixMask) and mask.kept_channels is not None
        meta, held = tokens.meta, len(tokens.meta["channels"])
        grey = unpatchify(mask.masked[:, :, None].expand(-1, -1, tokens.values.shape[-1] // held), meta["grid_size"],
                          meta["patch_size"])
        dropped = (~mask.kept_channels)[:, :, None, None].to(images.device)
        device = tokens.values.device
        mean_t, std_t = torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1)
        mixed = torch.where(dropped, (0 - mean_t) / std_t, images)  # dropped channels shown black
        columns = [denormalised_panels(images[:, :3], mean[:3], std[:3]),
                   denormalised_panels(mixed[:, :3], mean[:3], std[:3], grey[:, :1].expand(-1, 3, -1, -1))]
        targets: Any = self.target
        for name, chans in targets.outputs.items():
            pred = out.pred[name]
            if name in targets.norm_pix:  # back to pixels with each patch's own statistics
                source = select_channels(tokens.values, held, torch.tensor(chans, device=device).expand(tokens.batch_size, -1))
                spread = source.var(dim=-1, keepdim=True).add(1e-6).sqrt()
                pred = pred * spread + source.mean(dim=-1, keepdim=True)
            rebuilt = unpatchify(pred, meta["grid_size"], meta["patch_size"])
            if len(chans) == 3:
                columns.append(denormalised_panels(rebuilt, [mean[c] for c in chans], [std[c] for c in chans]))
                continue
            for k, channel in enumerate(chans):
                columns.append(denormalised_panels(images[:, channel:channel + 1], mean[channel:channel + 1],
                                                   std[channel:channel + 1]))
                columns.append(denormalised_panels(rebuilt[:, k:k + 1], mean[channel:channel + 1], std[channel:channel + 1]))
        return [list(row) for row in zip(*columns)]

    def panel_titles(self) -> PanelTitles:
        targets: Any = self.target
        called = {3: "depth", 4: "thermal"} if targets.channels == 5 else {}  # the R, G, B, D, T fusion
        names = ["RGB", "mixed + masked", "RGB rebuilt"]
        for chans in targets.outputs.values():
            if len(chans) != 3:
                names += [t for c in chans for t in (called.get(c, f"ch{c}"), f"{called.get(c, f'ch{c}')} rebuilt")]
        return PanelTitles(columns=names)


def mcm(size: str | None = "base", img_size: int | tuple[int, int] = 224, patch_size: int | None = None,
        channels: int = 5, keep: int = 3, subsets: Sequence[Sequence[int]] | None = None, mask_ratio: float = 0.75,
        outputs: Mapping[str, Sequence[int]] = OUTPUTS, norm_pix: Sequence[str] = ("rgb",),
        encoder_name: str | None = None, encoder: dict[str, Any] | None = None, decoder_embed_dim: int = 512,
        decoder_depth: int = 8, decoder_num_heads: int = 16, drop_path_rate: float = 0.0) -> MCM:
    """MCM with a timm ViT encoder of ``keep`` channels (ViT-B/16 by default) on ``channels``-channel
    fused images; every open setting of the paper is an argument (module docstring)."""
    covered = sorted(c for chans in outputs.values() for c in chans)
    if covered != list(range(channels)):
        raise ValueError(f"outputs must rebuild each of the {channels} channels once, got {dict(outputs)}")
    encoder_module = build_vit_encoder(size, encoder_name, img_size, patch_size, keep, encoder, drop_path_rate, "mcm")
    patch = encoder_module.patch_size
    grid = tuple(s // k for s, k in zip(as_pair(img_size, "img_size"), patch))
    return MCM(
        patchifier=ChannelPatchifier(patch, channels, downstream=keep),
        masker=ChannelMixMasker(mask_ratio, channels, keep, subsets),
        encoder=encoder_module,
        decoder=MCMDecoders(encoder_module.embed_dim, patch, grid, outputs, decoder_embed_dim, decoder_depth,
                            decoder_num_heads),
        target=MCMTargets(outputs, norm_pix, channels),
        loss=MCMLoss(outputs),
    )
