"""Audio-MAE (Huang et al., NeurIPS 2022; facebookresearch/AudioMAE ``models_mae.py``): a ViT over
16×16 patches of the (time × mel) log-mel spectrogram, 80 % of them removed at random, a decoder
with local (shifted-window) attention along time, norm-pix target, masked MSE.

Spectrograms are (B, 1, frames, bins) images, so core's ``image_patches`` cuts them exactly as the
reference (``nchpwq->nhwpqc``: token k = bins/16 · t + f, time-major). Two reference details are
reproduced so official checkpoints load and behave:

- position tables: the reference builds its fixed 2-D sin-cos table for a grid declared
  (bins/16, frames/16) = (8, 64) while its tokens form 64 × 8, and adds row k to token k. Token k
  therefore gets [sincos(k mod 64), sincos(k div 64)], not (t, f). ``pos_layout="reference"``
  (default) builds that table; ``"grid"`` the (t, f) one (a different model).
- the local decoder's blocks are timm's Swin-V2 "cr" blocks as the reference patched them in:
  scaled cosine attention with a learned temperature ``tau`` per head, a continuous position bias
  from a small MLP of log-spaced relative coordinates (with dropout 0.1), post-norm residuals;
  4 × 4 windows on the token grid, odd blocks shifted by (2, 0): along time only.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import Mlp
from torch import nn

from maekit.eval.finetune import Classifier
from maekit.eval.visualize import PanelTitles, reconstruction_titles
from maekit.model import MaskedAutoencoder, seeded_noise
from maekit.nn.base import Masker, NoiseSource
from maekit.nn.decoder import MAEDecoder
from maekit.nn.encoder import ViTEncoder
from maekit.nn.masking import check_mask_ratio, draw_noise
from maekit.nn.patchify import as_pair
from maekit.nn.pos_embed import sincos_2d_table
from maekit.ops import init_mae_weights
from maekit.structures import Mask, Tokens

__all__ = ["audio_position_table", "AudioViTEncoder", "TimeFrequencyMasker", "WindowCosineAttention",
           "SwinCRBlock", "AudioMAEDecoder", "AudioMAE", "audio_mae", "AudioClassifier", "audio_classifier",
           "AUDIO_MAE_PRESETS", "time_frequency_mask_order"]

AUDIO_MAE_PRESETS = {"tiny": "vit_tiny_patch16_224", "small": "vit_small_patch16_224",
                     "base": "vit_base_patch16_224", "large": "vit_large_patch16_224"}
POS_LAYOUTS = ("reference", "grid")


def audio_position_table(grid_size: tuple[int, int], dim: int, layout: str = "reference") -> torch.Tensor:
    """The fixed sin-cos table (1, 1 + h·w, dim) for a (time h, frequency w) token grid. "reference":
    the table the reference builds for the transposed grid (w, h), row k added to token k; "grid":
    the plain 2-D table of (t, f)."""
    if layout not in POS_LAYOUTS:
        raise ValueError(f"pos_layout must be one of {', '.join(POS_LAYOUTS)}, got {layout!r}")
    h, w = grid_size
    return sincos_2d_table((w, h) if layout == "reference" else (h, w), dim)


class AudioViTEncoder(ViTEncoder):
    """Audio-MAE's encoder: a timm ViT (in_chans 1, spectrogram-sized ``img_size`` such as
    (1024, 128)) with the reference's fixed position table (``pos_layout``, see the module). Inputs
    of another length (e.g. ESC-50's 512 frames) get the same fixed table built for their grid."""

    def __init__(self, model_name: str = "vit_base_patch16_224", img_size: int | tuple[int, int] = (1024, 128),
                 patch_size: int | None = 16, in_chans: int = 1, pos_layout: str = "reference",
                 drop_path_rate: float = 0.0, **timm_kwargs: Any) -> None:
        if pos_layout not in POS_LAYOUTS:
            raise ValueError(f"pos_layout must be one of {', '.join(POS_LAYOUTS)}, got {pos_layout!r}")
        self.pos_layout = pos_layout
        super().__init__(model_name, img_size, patch_size, in_chans, fixed_pos_embed=True,
                         drop_path_rate=drop_path_rate, **timm_kwargs)

    def fixed_table(self, grid_size: tuple[int, int]) -> torch.Tensor:
        return audio_position_table(grid_size, self.embed_dim, self.pos_layout)

    def grid_table(self, grid_size: tuple[int, int]) -> torch.Tensor:
        if tuple(grid_size) == self.grid_size:
            return self.pos_embed
        return self.fixed_table(tuple(grid_size)).to(self.pos_embed)


def time_frequency_mask_order(masked: torch.Tensor) -> torch.Tensor:
    """The reference's token order for a (B, N) 0/1 mask: kept tokens by index, then removed ones
    by index (``argsort(index + 999·mask)``)."""
    index = torch.arange(masked.shape[1], device=masked.device)
    return torch.argsort(index + masked.long() * masked.shape[1], dim=1)


class TimeFrequencyMasker(Masker):
    """Audio-MAE's 2-D masking (``random_masking_2d``): whole time columns (``mask_t_prob`` of them)
    and whole frequency rows (``mask_f_prob``) are removed; a token stays only if both its time and
    its frequency are kept, so int(T(1 − pt)) · int(F(1 − pf)) tokens are visible. Noise: one number
    per time step then one per frequency band (B × (T + F)); the lowest ones are kept."""

    def __init__(self, mask_t_prob: float = 0.7, mask_f_prob: float = 0.3) -> None:
        super().__init__()
        self.mask_t_prob, self.mask_f_prob = check_mask_ratio(mask_t_prob), check_mask_ratio(mask_f_prob)

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        time, freq = tokens.meta["grid_size"]
        return (tokens.batch_size, time + freq)

    def masked(self, tokens: Tokens, noise: NoiseSource = None) -> torch.Tensor:
        """(B, T·F) 1 for removed tokens."""
        time, freq = tokens.meta["grid_size"]
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device, "(batch, time + frequency)")
        keep_t, keep_f = int(time * (1 - self.mask_t_prob)), int(freq * (1 - self.mask_f_prob))
        if keep_t < 1 or keep_f < 1:
            raise ValueError(f"mask_t_prob={self.mask_t_prob}, mask_f_prob={self.mask_f_prob} keep no token of a "
                             f"{time}×{freq} grid")

        def removed(part: torch.Tensor, keep: int) -> torch.Tensor:  # 1 where not among the `keep` lowest
            ranks = torch.argsort(torch.argsort(part, dim=1), dim=1)
            return (ranks >= keep).float()

        mask_t, mask_f = removed(noise[:, :time], keep_t), removed(noise[:, time:], keep_f)
        return 1 - (1 - mask_t[:, :, None]) * (1 - mask_f[:, None, :])  # B × T × F

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        masked = self.masked(tokens, noise).flatten(1)
        return Mask.from_order(time_frequency_mask_order(masked), int((masked[0] == 0).sum()))

    def extra_repr(self) -> str:
        return f"mask_t_prob={self.mask_t_prob}, mask_f_prob={self.mask_f_prob}"


class WindowCosineAttention(nn.Module):
    """Swin-V2 "cr" window attention as in the reference decoder: cos(q, k) / max(tau, 0.01) plus a
    position bias from ``meta_mlp`` (2 → 384 → heads, ReLU, dropout 0.1) of the relative coordinates
    sign(d)·log(1 + |d|); no 1/√d scale."""

    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int], meta_hidden_dim: int = 384) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"decoder width {dim} is not divisible by its {num_heads} heads")
        self.num_heads, self.window_size = num_heads, window_size
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.meta_mlp = Mlp(2, hidden_features=meta_hidden_dim, out_features=num_heads, act_layer=nn.ReLU, drop=0.1)
        self.tau = nn.Parameter(torch.ones(num_heads))
        self.register_buffer("relative_coordinates_log", self.log_relative_coordinates(window_size), persistent=False)

    @staticmethod
    def log_relative_coordinates(window: tuple[int, int]) -> torch.Tensor:
        """(area², 2): for every pair (i, j) of window cells, sign(d)·log(1 + |d|) of d = cell_i − cell_j."""
        rows, cols = torch.meshgrid(torch.arange(window[0]), torch.arange(window[1]), indexing="ij")
        coords = torch.stack([rows, cols]).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).reshape(-1, 2).float()
        return torch.sign(relative) * torch.log1p(relative.abs())

    def position_bias(self, window: tuple[int, int] | None = None) -> torch.Tensor:
        """(1, heads, area, area) for ``window`` (the built one by default; the bias is a function of
        the offsets, so a window clipped to a smaller grid gets its own)."""
        window = self.window_size if window is None else tuple(window)
        coordinates = (self.relative_coordinates_log if window == tuple(self.window_size) else
                       self.log_relative_coordinates(window).to(self.relative_coordinates_log))
        area = window[0] * window[1]
        bias = self.meta_mlp(coordinates)  # area² × heads
        return bias.transpose(1, 0).reshape(1, self.num_heads, area, area)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                window: tuple[int, int] | None = None) -> torch.Tensor:
        windows, length, dim = x.shape
        query, key, value = self.qkv(x).view(windows, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        denominator = query.norm(dim=-1, keepdim=True) @ key.norm(dim=-1, keepdim=True).transpose(-2, -1)
        attn = query @ key.transpose(-2, -1) / denominator.clamp(min=1e-6)
        attn = attn / self.tau.clamp(min=0.01).reshape(1, -1, 1, 1) + self.position_bias(window)
        if mask is not None:  # num_windows × L × L, the same for every sample
            per_sample = mask.shape[0]
            attn = (attn.view(-1, per_sample, self.num_heads, length, length) + mask[None, :, None]).flatten(0, 1)
        x = (attn.softmax(dim=-1) @ value).transpose(1, 2).reshape(windows, length, dim)
        return self.proj(x)


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, C) → (B · windows, wh · ww, C), windows in row-major order."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window[0], window[0], width // window[1], window[1], channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window[0] * window[1], channels)


def window_reverse(windows: torch.Tensor, window: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: → (B, H, W, C)."""
    height, width = grid
    x = windows.view(-1, height // window[0], width // window[1], window[0], window[1], windows.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, windows.shape[-1])


class SwinCRBlock(nn.Module):
    """One block of the reference's local decoder (timm's Swin-V2 "cr" block): x + norm1(window
    attention(x)), then x + norm2(mlp(x)) — post-norm. Windows and shift are clipped to the grid as
    the reference does (a window as large as the grid, no shift along an axis it covers); the
    shifted windows' attention mask (−100 across the wrap) is built per grid and cached."""

    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int] = (4, 4),
                 shift_size: tuple[int, int] = (0, 0), mlp_ratio: float = 4.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.window_size, self.shift_size = as_pair(window_size, "window_size"), tuple(shift_size)
        self.attn = WindowCosineAttention(dim, num_heads, self.window_size)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self._masks: dict[tuple, torch.Tensor | None] = {}

    def layout(self, grid: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        window = tuple(min(w, g) for w, g in zip(self.window_size, grid))
        shift = tuple(0 if g <= w else s for g, w, s in zip(grid, window, self.shift_size))
        if any(g % w for g, w in zip(grid, window)):
            raise ValueError(f"the local decoder's {window[0]}×{window[1]} windows do not tile the {grid[0]}×{grid[1]} "
                             f"token grid; choose a spectrogram length and bin count whose patch grid they divide")
        return window, shift  # type: ignore[return-value]

    def attention_mask(self, grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int],
                       device: torch.device) -> torch.Tensor | None:
        if not any(shift):
            return None
        key = (grid, window, shift, device)
        if key not in self._masks:
            regions = torch.zeros(1, *grid, 1, device=device)
            label = 0
            for rows in (slice(0, -window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
                for cols in (slice(0, -window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
                    regions[:, rows, cols, :] = label
                    label += 1
            labels = window_partition(regions, window).squeeze(-1)  # windows × area
            different = labels[:, None, :] != labels[:, :, None]
            self._masks[key] = torch.zeros(different.shape, device=device).masked_fill(different, -100.0)
        return self._masks[key]

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        batch, length, dim = x.shape
        window, shift = self.layout(grid)
        shifted = x.view(batch, *grid, dim)
        if any(shift):
            shifted = torch.roll(shifted, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        attended = self.attn(window_partition(shifted, window),
                             self.attention_mask(grid, window, shift, x.device), window)
        attended = window_reverse(attended, window, grid)
        if any(shift):
            attended = torch.roll(attended, shifts=shift, dims=(1, 2))
        x = x + self.norm1(attended.reshape(batch, length, dim))
        return x + self.norm2(self.mlp(x))


class AudioMAEDecoder(MAEDecoder):
    """Audio-MAE's decoder: Linear to the decoder width, mask tokens un-shuffled, the fixed table
    (``pos_layout``), then either ``mode="local"`` — Swin-V2 "cr" blocks over the (time × frequency)
    token grid (the class token set aside; the reference default, 16 blocks of 16 heads, 4 × 4
    windows, odd blocks shifted (2, 0)) — or ``mode="global"``, plain ViT blocks over every token;
    LayerNorm, Linear to the patch values."""

    def __init__(self, encoder_dim: int, out_dim: int, grid_size: int | tuple[int, int] = (64, 8),
                 embed_dim: int = 512, depth: int = 16, num_heads: int = 16, mlp_ratio: float = 4.0,
                 mode: str = "local", window_size: Sequence[int] = (4, 4), shift_size: Sequence[int] = (2, 0),
                 pos_layout: str = "reference", norm_eps: float = 1e-6) -> None:
        if mode not in ("local", "global"):
            raise ValueError(f"decoder mode must be 'local' (shifted windows) or 'global', got {mode!r}")
        super().__init__(encoder_dim, out_dim, grid_size, embed_dim, depth, num_heads, mlp_ratio,
                         num_prefix_tokens=1, norm_eps=norm_eps)
        self.mode, self.pos_layout = mode, pos_layout
        self.pos_embed.data.copy_(audio_position_table(self.grid_size, embed_dim, pos_layout))
        if mode == "local":
            window, shift = as_pair(tuple(window_size), "window_size"), tuple(shift_size)
            self.blocks = nn.ModuleList(
                SwinCRBlock(embed_dim, num_heads, window, shift if index % 2 else (0, 0), mlp_ratio, norm_eps)
                for index in range(depth))
            self.blocks.apply(init_mae_weights)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        grid = tuple(tokens.meta.get("grid_size", self.grid_size))
        if grid == self.grid_size:
            return self.pos_embed
        return audio_position_table(grid, self.pos_embed.shape[-1], self.pos_layout).to(self.pos_embed)

    def run_blocks(self, x: torch.Tensor, tokens: Tokens) -> torch.Tensor:
        if self.mode == "global":
            return super().run_blocks(x, tokens)
        grid = tuple(tokens.meta.get("grid_size", self.grid_size))
        prefix, grid_tokens = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
        for block in self.blocks:  # the class token skips the windows (the reference drops it here)
            grid_tokens = block(grid_tokens, grid)
        return torch.cat([prefix, grid_tokens], dim=1)


class AudioMAE(MaskedAutoencoder):
    """Audio-MAE: core's pass unchanged; pictures show spectrograms with time along the width and
    low frequencies at the bottom."""

    picture_scale = 2

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        """input | masked | reconstruction | reconstruction with visible patches, each a spectrogram
        (normalised values −2..2 shown as black..white), masks seeded by ``seed``."""
        from maekit.eval.visualize import reconstruction_panels

        self.eval()
        rows = reconstruction_panels(self, self.run_steps(images, noise=seeded_noise(seed)), (0.5,), (0.25,))
        return [[panel.transpose(1, 0, 2)[::-1].copy() for panel in row] for row in rows]

    def panel_titles(self) -> PanelTitles:
        """core's columns, each a spectrogram: input | masked | reconstruction | reconstruction +
        visible (the first two alone for a target without an inverse)."""
        return reconstruction_titles(self.target)


def _encoder_name(size: str | None, encoder_name: str | None) -> str:
    if encoder_name is not None:
        return encoder_name
    if size not in AUDIO_MAE_PRESETS:
        raise ValueError(f"audio_mae size must be one of {', '.join(AUDIO_MAE_PRESETS)} (or give encoder_name), "
                         f"got {size!r}")
    return AUDIO_MAE_PRESETS[size]


def audio_mae(size: str | None = "base", target_length: int = 1024, num_mel_bins: int = 128, patch_size: int = 16,
              mask_ratio: float = 0.8, masking: str = "random", mask_t_prob: float = 0.7, mask_f_prob: float = 0.3,
              decoder_mode: str = "local", decoder_embed_dim: int = 512, decoder_depth: int | None = None,
              decoder_num_heads: int = 16, window_size: Sequence[int] = (4, 4), shift_size: Sequence[int] = (2, 0),
              norm_pix_loss: bool = True, pos_layout: str = "reference", encoder_name: str | None = None,
              encoder: dict[str, Any] | None = None, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> AudioMAE:
    """Audio-MAE with the reference's defaults: ViT-B over (1024 frames × 128 bins) in 16 × 16
    patches, unstructured masking at 0.8 (``masking="time_frequency"``: 2-D masking with
    ``mask_t_prob``/``mask_f_prob``), the local decoder of 16 Swin-V2 "cr" blocks (``decoder_depth``
    defaults to 16 local / 8 global), norm-pix target, masked MSE."""
    if masking not in ("random", "time_frequency"):
        raise ValueError(f"masking must be 'random' or 'time_frequency', got {masking!r}")
    img_size = (target_length, num_mel_bins)
    encoder_module = AudioViTEncoder(_encoder_name(size, encoder_name), img_size, patch_size, 1, pos_layout,
                                     drop_path_rate, **(encoder or {}))
    grid = encoder_module.grid_size
    masker = (dict(type="random_mask", mask_ratio=mask_ratio) if masking == "random" else
              dict(type="audio_time_frequency_mask", mask_t_prob=mask_t_prob, mask_f_prob=mask_f_prob))
    depth = decoder_depth if decoder_depth is not None else (16 if decoder_mode == "local" else 8)
    return AudioMAE(
        patchifier=dict(type="image_patches", patch_size=patch_size, in_chans=1),
        masker=masker,
        encoder=encoder_module,
        decoder=AudioMAEDecoder(encoder_module.embed_dim, patch_size * patch_size, grid, decoder_embed_dim, depth,
                                decoder_num_heads, mlp_ratio, decoder_mode, window_size, shift_size, pos_layout),
        target=dict(type="norm_pixels" if norm_pix_loss else "pixels"),
        loss=dict(type="masked_mse"),
    )


class AudioClassifier(Classifier):
    """Audio-MAE's fine-tuning model (``models_vit.py``): the encoder, mean of the patch tokens,
    ``fc_norm``, ``head`` (N(0, 2e-5)). In training, 2-D token masking (``mask_t_prob`` /
    ``mask_f_prob``, the reference's 0.2 / 0.2) and, with probability ``mixup``, each spectrogram
    mixed with its batch neighbour by λ ~ Beta(10, 10), labels alike. ``multi_label``: binary
    cross-entropy over a multi-hot label and mAP (AudioSet); else cross-entropy and accuracy."""

    def __init__(self, patchifier: nn.Module, encoder: AudioViTEncoder, num_classes: int, multi_label: bool = False,
                 mask_t_prob: float = 0.2, mask_f_prob: float = 0.2, mixup: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.patchifier, self.encoder, self.num_classes, self.multi_label = patchifier, encoder, num_classes, multi_label
        self.encoder.norm = nn.Identity()  # as the reference, which deletes it: fc_norm follows the mean pool
        self.token_masker = TimeFrequencyMasker(mask_t_prob, mask_f_prob) if mask_t_prob or mask_f_prob else None
        if not 0.0 <= mixup <= 1.0:
            raise ValueError(f"mixup is a probability in [0, 1], got {mixup!r}")
        self.mixup = mixup
        self.fc_norm = nn.LayerNorm(encoder.embed_dim, eps=1e-6)
        self.head = nn.Linear(encoder.embed_dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)
        self.criterion = nn.BCEWithLogitsLoss() if multi_label else nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def classify(self, batch: Any) -> torch.Tensor:
        tokens = self.patchifier(batch)
        if self.training and self.token_masker is not None:
            tokens = tokens.take(self.token_masker(tokens).ids_keep)
        latents = self.encoder(tokens)
        return self.head(self.fc_norm(latents[:, self.encoder.num_prefix_tokens:].mean(dim=1)))

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels as probabilities (B × classes): multi-hot as given, class indices one-hot."""
        if self.multi_label:
            if labels.dim() != 2 or labels.shape[1] != self.num_classes:
                raise ValueError(f"multi_label expects multi-hot labels of {self.num_classes} classes, got shape "
                                 f"{tuple(labels.shape)}")
            return labels.float()
        if labels.dim() != 1:
            raise ValueError(f"labels of shape {tuple(labels.shape)} are multi-hot: set "
                             f"finetune.classifier_options.multi_label=True")
        if (labels < 0).any():
            raise ValueError("fine-tuning needs labelled data: some samples have no label (-1)")
        if (labels >= self.num_classes).any():
            raise ValueError(f"label {int(labels.max())} is outside the {self.num_classes} classes the head was "
                             f"built for (finetune.num_classes)")
        return nn.functional.one_hot(labels.long(), self.num_classes).float()

    def forward(self, batch: dict, noise: Any = None) -> dict[str, torch.Tensor]:
        inputs = batch["inputs"]
        targets = self.targets(torch.as_tensor(batch["label"], device=inputs.device))
        if self.training and self.mixup > 0:
            weight = torch.distributions.Beta(10.0, 10.0).sample((inputs.shape[0],)).to(inputs.device)
            weight = torch.where(torch.rand(inputs.shape[0], device=inputs.device) < self.mixup, weight,
                                 torch.ones_like(weight))
            inputs = weight.view(-1, 1, 1, 1) * inputs + (1 - weight.view(-1, 1, 1, 1)) * inputs.roll(1, 0)
            targets = weight[:, None] * targets + (1 - weight[:, None]) * targets.roll(1, 0)
        logits = self.classify({**batch, "inputs": inputs}).float()
        loss = self.criterion(logits, targets)  # soft targets: probabilities for either criterion
        return {"loss": loss, "accuracy": (logits.argmax(-1) == targets.argmax(-1)).float().mean()}

    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        if not self.multi_label:
            return super().metrics(logits, labels)
        from maekit_audio.metrics import mean_average_precision

        return {"mAP": mean_average_precision(logits.float().numpy(), labels.numpy())}


def audio_classifier(model: dict, num_classes: int, checkpoint: str | None = None, drop_path_rate: float = 0.1,
                     multi_label: bool = False, mask_t_prob: float = 0.2, mask_f_prob: float = 0.2,
                     mixup: float = 0.5, label_smoothing: float = 0.0) -> AudioClassifier:
    """The encoder of a (pre-trained) audio_mae config + Audio-MAE's fine-tuning head and recipe.
    ``checkpoint``: pre-trained weights (any layout ``maekit convert`` reads, or ``audio-convert``'s
    pre-training output) or a fine-tuned classifier (``audio-convert`` of an official fine-tuned file:
    ``fc_norm`` and ``head`` load too)."""
    from maekit.eval.probe import load_trained_model, load_weights
    from maekit.io.checkpoint import load_state_dict

    state = None if checkpoint is None else load_state_dict(checkpoint)
    finetuned = state is not None and any(key.startswith(("fc_norm.", "head.")) for key in state)
    method = load_trained_model({**model, "drop_path_rate": drop_path_rate}, None if finetuned else checkpoint).train()
    classifier = AudioClassifier(method.patchifier, method.encoder, num_classes, multi_label, mask_t_prob,
                                 mask_f_prob, mixup, label_smoothing)
    if finetuned:
        load_weights(classifier, state, checkpoint, what="classifier")
    return classifier
