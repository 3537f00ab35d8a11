"""MFM (Xie et al., "Masked Frequency Modeling for Self-Supervised Visual Pre-Training", ICLR 2023)
as a :class:`~maekit.model.MaskedAutoencoder` that overrides one step: ``encoder_input`` gives the
encoder the tokens of the whole image corrupted in the frequency domain (:meth:`MFM.corrupt_input`,
applied to the batch's images before tokenizing) instead of dropping tokens."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from maekit.data.views import default_mean_std
from maekit.eval.visualize import PanelTitles
from maekit.model import ComponentSpec, MaskedAutoencoder, seeded_noise
from maekit.nn.patchify import as_pair
from maekit.structures import Mask, Tokens
from maekit_mfm.corruption import DownUpSampleCorruption, FrequencyMasker, GaussianBlurCorruption, GaussianNoiseCorruption

__all__ = ["MFM", "mfm", "CORRUPTIONS"]

# corruption setting → (masker, the loss reduction the reference pairs with it)
CORRUPTIONS: dict[str, tuple[str, str]] = {
    "frequency": ("mfm_frequency_mask", "masked"),
    "super_resolution": ("mfm_downup_sample", "normal"),
    "deblur": ("mfm_gaussian_blur", "normal"),
    "denoise": ("mfm_gaussian_noise", "normal"),
}


class MFM(MaskedAutoencoder):
    """tokenize → target (the image) → corruption decision → encode the WHOLE corrupted image →
    head predicts the image → frequency loss.

    Inputs are images normalised with ``mean``/``std`` (maekit's usual transforms); the corruption
    is applied where the reference applies it, on the image in [0, 1] (de-normalised, corrupted,
    clamped, normalised again), so datasets, probes and fine-tuning stay those of every image method.
    """

    def __init__(self, patchifier: ComponentSpec, masker: ComponentSpec, encoder: ComponentSpec,
                 decoder: ComponentSpec, target: ComponentSpec, loss: ComponentSpec,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__(patchifier, masker, encoder, decoder, target, loss)
        channels = self.patchifier.in_chans
        default_mean, default_std = default_mean_std(channels)
        mean, std = tuple(mean or default_mean), tuple(std or default_std)
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mfm mean/std need {channels} values (in_chans), got {len(mean)} and {len(std)}")
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.pixel_range_checked = False

    def corrupt_input(self, batch: Any, corruption: Mask) -> torch.Tensor:
        """The normalised images the encoder sees: the batch's images de-normalised to [0, 1],
        corrupted there, normalised again (before tokenizing: no round trip through tokens)."""
        images = self.patchifier.images_of(batch)
        pixels = images.float() * self.pixel_std + self.pixel_mean
        if not self.pixel_range_checked:
            self.check_pixel_range(pixels)
        return (self.masker.corrupt(pixels, corruption) - self.pixel_mean) / self.pixel_std

    def check_pixel_range(self, pixels: torch.Tensor) -> None:
        """Once: the model's mean/std must undo the data's normalisation, or the corruption (and its
        clamp to [0, 1]) would act on the wrong range without any other sign."""
        low, high = pixels.min().item(), pixels.max().item()
        if low < -0.05 or high > 1.05:
            raise ValueError(
                f"mfm: de-normalised inputs span [{low:.2f}, {high:.2f}], not [0, 1]; the model's mean/std "
                f"({self.pixel_mean.flatten().tolist()}, {self.pixel_std.flatten().tolist()}) must be those the "
                f"data transform normalised with (set model.mean/model.std to the transform's)")
        self.pixel_range_checked = True

    def encoder_input(self, batch: Any, tokens: Tokens, mask: Mask) -> Tokens:
        return self.tokenize(self.corrupt_input(batch, mask))

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """input | corrupted input | reconstruction; for frequency masking input | kept frequencies
        (white = kept, centred spectrum) | corrupted input | reconstruction | the reconstruction with
        the input's kept frequencies pasted back (the loss only supervises the removed ones)."""
        from maekit.eval.visualize import uint8_panels
        from maekit_mfm.corruption import paste_frequencies

        self.eval()
        tokens = self.tokenize(images)
        corruption = self.make_mask(tokens, seeded_noise(seed))
        corrupted = self.corrupt_input(images, corruption)  # once: the noise sibling draws anew per call
        prediction = self.decode(self.encoder(self.tokenize(corrupted)), corruption, tokens).float()
        mean_t, std_t = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)

        source, corrupted, prediction = (x.float() * std_t + mean_t for x in (images, corrupted, prediction))
        kept = getattr(corruption, "kept_frequencies", None)
        columns = [source] + ([kept.unsqueeze(1)] if kept is not None else []) + [corrupted, prediction]
        if kept is not None:
            columns.append(paste_frequencies(source, prediction, kept))
        return [list(row) for row in zip(*(uint8_panels(column) for column in columns))]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels` for this model's corruption."""
        if isinstance(self.masker, FrequencyMasker):
            return PanelTitles(columns=("input", "kept frequencies", "masked", "reconstruction",
                                        "reconstruction + kept frequencies"))
        names = {DownUpSampleCorruption: "down- and up-sampled", GaussianBlurCorruption: "blurred",
                 GaussianNoiseCorruption: "noisy"}
        return PanelTitles(columns=("input", names.get(type(self.masker), "corrupted"), "reconstruction"))


def _is_vit(model_name: str) -> bool:
    import timm

    if not timm.is_model(model_name):
        raise ValueError(f"mfm encoder_name {model_name!r} is not a timm model name "
                         f"(e.g. vit_base_patch16_224 or resnet50)")
    return timm.models.model_entrypoint(model_name).__module__ == "timm.models.vision_transformer"


def mfm(encoder_name: str = "vit_base_patch16_224", img_size: int | tuple[int, int] = 224, in_chans: int = 3,
        patch_size: int | None = None, encoder: dict[str, Any] | None = None, corruption: str = "frequency",
        radius_inner: float = 16, radius_outer: float = 999, sample_ratio: float = 0.5, sr_factor: int = 8,
        blur_sigma: Sequence[float] = (5.0, 5.0), blur_kernel_sizes: Sequence[int] = (7, 9, 11, 13, 15, 17, 19, 21),
        noise_sigma: Sequence[float] = (75.0, 75.0), recover: str | None = None, loss: dict[str, Any] | None = None,
        decoder_depth: int = 0, decoder_embed_dim: int = 512, decoder_num_heads: int = 16,
        fixed_pos_embed: bool = False, drop_path_rate: float = 0.0, mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None) -> MFM:
    """MFM with any timm ViT (``vit_*``: cls token dropped, tokens to the grid, head at the patch
    stride) or timm CNN (``resnet50`` in the paper: head at its stride, 32) encoder.

    ``corruption`` is "frequency" (MFM) or a sibling baseline of the same code family:
    "super_resolution" (``sr_factor``), "deblur" (``blur_sigma``, ``blur_kernel_sizes``), "denoise"
    (``noise_sigma`` in 0–255 units). ``encoder`` passes timm options (sizes for a ViT; for Swin
    also its ``img_size``). ``recover`` defaults to the reference's pairing: "masked" for
    frequency masking, "normal" for the siblings. ``loss`` passes further FrequencyLoss options
    (``loss_gamma``, ``with_matrix``, ...). Defaults are the ViT-B paper config (r1 16, learned
    absolute positions, no transformer decoder).
    """
    from maekit.registry import build

    if corruption not in CORRUPTIONS:
        raise ValueError(f"mfm corruption must be one of {', '.join(CORRUPTIONS)}, got {corruption!r}")
    masker_name, default_recover = CORRUPTIONS[corruption]
    if (recover or default_recover) == "masked" and corruption != "frequency":
        raise ValueError(f"mfm recover='masked' averages over removed frequencies, which only the frequency "
                         f"corruption has; use recover='normal' with corruption={corruption!r}")
    if encoder and {"in_chans", "model_name", "drop_path_rate"} & set(encoder):
        raise ValueError(f"mfm: give {sorted({'in_chans', 'model_name', 'drop_path_rate'} & set(encoder))} "
                         f"as mfm's own arguments (encoder_name, in_chans, drop_path_rate), not inside encoder=")
    masker_options = {"frequency": dict(radius_inner=radius_inner, radius_outer=radius_outer, sample_ratio=sample_ratio),
                      "super_resolution": dict(factor=sr_factor),
                      "deblur": dict(sigma=tuple(blur_sigma), kernel_sizes=tuple(blur_kernel_sizes)),
                      "denoise": dict(sigma=tuple(noise_sigma))}[corruption]
    if _is_vit(encoder_name):
        encoder_module = build("encoder", dict(type="vit_encoder", model_name=encoder_name, img_size=img_size,
                                               patch_size=patch_size, in_chans=in_chans, fixed_pos_embed=fixed_pos_embed,
                                               drop_path_rate=drop_path_rate, **(encoder or {})))
        stride = encoder_module.patch_size[0]
        if encoder_module.patch_size[0] != encoder_module.patch_size[1]:
            raise ValueError(f"mfm's PixelShuffle head needs square patches, got {encoder_module.patch_size}")
    else:
        if patch_size is not None:
            raise ValueError(f"mfm patch_size applies to ViT encoders; {encoder_name!r} has its own stride")
        encoder_module = build("encoder", dict(type="mfm_cnn_encoder", model_name=encoder_name, in_chans=in_chans,
                                               drop_path_rate=drop_path_rate, **(encoder or {})))
        stride = encoder_module.stride
    height, width = as_pair(img_size, "mfm img_size")
    if height % stride or width % stride:
        raise ValueError(f"mfm img_size {height}×{width} must be a multiple of the encoder stride {stride}")
    return MFM(
        patchifier=dict(type="image_patches", patch_size=stride, in_chans=in_chans),
        masker=dict(type=masker_name, **masker_options),
        encoder=encoder_module,
        decoder=dict(type="mfm_pixel_shuffle_head", encoder_dim=encoder_module.embed_dim, stride=stride,
                     out_chans=in_chans, num_prefix_tokens=encoder_module.num_prefix_tokens, depth=decoder_depth,
                     embed_dim=decoder_embed_dim, num_heads=decoder_num_heads,
                     grid_size=(height // stride, width // stride)),
        target=dict(type="mfm_image"),
        loss=dict(type="mfm_frequency_loss", recover=recover or default_recover, **(loss or {})),
        mean=mean, std=std,
    )
