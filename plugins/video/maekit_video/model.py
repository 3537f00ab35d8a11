"""VideoMAE, OmniMAE and MaskFeat over space-time cubes, and the video classifier.

One encoder (:class:`VideoViTEncoder`: a ViT over 2×16×16 cubes, no class token, the fixed 1-D
sinusoid table of VideoMAE over the flat token index) serves the three methods; each differs in
one step: VideoMAE's decoder and target, OmniMAE's decoder and per-source mask ratio, MaskFeat's
mask tokens inside the encoder and HOG target. Core supplies cube patchify, the maskers, the
targets and the pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from maekit.data.samples import IMAGENET_MEAN, IMAGENET_STD
from maekit.eval.finetune import ViTClassifier
from maekit.eval.visualize import PanelTitles
from maekit.model import MaskedAutoencoder, MaskTokenModel
from maekit.nn.base import NoiseSource
from maekit.nn.decoder import MAEDecoder
from maekit.nn.encoder import TokenEncoder, make_blocks
from maekit.nn.masking import RandomMasker
from maekit.nn.pos_embed import sincos_1d, sincos_2d_table, sinusoid_table
from maekit.ops import fill_mask_tokens, init_mae_weights
from maekit.structures import Mask, Prediction, Tokens

__all__ = ["VIDEO_SIZES", "VIDEOMAE_DECODERS", "VideoViTEncoder", "VideoMAEDecoder", "OmniMAEDecoder", "SourceRatioMasker",
           "VideoMAE", "MaskFeat", "VideoClassifier", "videomae", "omnimae", "maskfeat", "video_classifier",
           "flat_positions", "spacetime_sincos_table", "SpaceTimePositions"]

#: encoder width, depth, heads of ViT-S/B/L/H (VideoMAE's registered models)
VIDEO_SIZES: dict[str, tuple[int, int, int]] = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16),
                                                "huge": (1280, 32, 16)}
#: VideoMAE's decoder width and heads per encoder size (depth 4 from its pre-training script)
VIDEOMAE_DECODERS: dict[str, tuple[int, int]] = {"small": (192, 3), "base": (384, 6), "large": (512, 8), "huge": (640, 8)}


def flat_positions(tokens: Tokens) -> torch.Tensor:
    """Each token's index n = t·h·w + row·w + col in its clip's time-major order (B×N, long): the
    row of the 1-D sinusoid table it takes. Images (one time slice) take rows 0..h·w−1."""
    grid = tuple(tokens.meta["grid_size"])
    if len(grid) != 3:
        raise ValueError(f"video models need space-time cubes (meta grid_size (t, h, w)), got grid {grid}")
    _, h, w = grid
    t, row, col = tokens.coords.unbind(-1)
    return (t * (h * w) + row * w + col).long()


class SinusoidPositions(nn.Module):
    """The fixed 1-D sinusoid table (see :func:`~maekit.nn.pos_embed.sinusoid_table`), looked up by
    :func:`flat_positions`. Not stored in state dicts (official checkpoints do not hold it)."""

    def __init__(self, dim: int, num_positions: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("table", sinusoid_table(num_positions, dim)[0], persistent=False)

    def forward(self, tokens: Tokens) -> torch.Tensor:
        positions = flat_positions(tokens)
        grid = tokens.meta["grid_size"]
        needed = grid[0] * grid[1] * grid[2]  # from the grid, not positions.max(): no device sync per pass
        table = self.table if needed <= self.table.shape[0] else sinusoid_table(needed, self.dim)[0].to(self.table.device)
        return table[positions]


def spacetime_sincos_table(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """MVD's fixed table (1, t·h·w, dim), time-major: per token [1-D sin-cos of its time slice
    (dim/4 channels) | MAE's 2-D sin-cos of its (row, column) (3·dim/4)], as ``get_3d_sincos_pos_embed``
    of ruiwang2021/mvd (generalised to h ≠ w)."""
    if dim % 16:
        raise ValueError(f"the space-time sin-cos table needs a width divisible by 16, got {dim}")
    t, h, w = grid
    temporal = torch.from_numpy(sincos_1d(dim // 4, np.arange(t, dtype=np.float32))).float()  # t, dim/4
    spatial = sincos_2d_table((h, w), dim // 4 * 3, num_prefix_tokens=0)[0]  # h·w, 3·dim/4
    table = torch.cat([temporal[:, None].expand(t, h * w, -1), spatial[None].expand(t, -1, -1)], dim=-1)
    return table.reshape(1, t * h * w, dim)


class SpaceTimePositions(nn.Module):
    """MVD's table (:func:`spacetime_sincos_table`) looked up by :func:`flat_positions`; rebuilt for
    a clip of another grid. Not stored in state dicts (fixed)."""

    def __init__(self, dim: int, grid: tuple[int, int, int]) -> None:
        super().__init__()
        self.dim, self.grid = dim, tuple(grid)
        self.register_buffer("table", spacetime_sincos_table(self.grid, dim)[0], persistent=False)

    def forward(self, tokens: Tokens) -> torch.Tensor:
        grid = tuple(tokens.meta["grid_size"])
        table = self.table if grid == self.grid else spacetime_sincos_table(grid, self.dim)[0].to(self.table.device)  # type: ignore[arg-type]
        return table[flat_positions(tokens)]


class CubeEmbed(nn.Module):
    """VideoMAE's ``PatchEmbed``: a Conv3d with kernel = stride = the cube (``proj``, its checkpoint name)."""

    def __init__(self, in_chans: int, embed_dim: int, cube: tuple[int, int, int]) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=cube, stride=cube)


class VideoViTEncoder(TokenEncoder):
    """A ViT over space-time cubes, as VideoMAE's encoder: Conv3d cube embedding (applied as a
    matrix to the visible cubes' (τ, row, col, channel) values: the same arithmetic), the fixed
    sinusoid table added before tokens are dropped, no class token, pre-norm blocks with query and
    value biases but no key bias (``qkv_bias="qv"``; True for a fused bias), LayerNorm eps 1e-6.

    ``mask_token`` adds the learned token that replaces removed cubes when the encoder sees every
    token (MaskFeat). Init as VideoMAE: xavier-uniform Linear, zero bias, LayerNorm 1/0, Conv3d
    PyTorch's default (``embed_init="xavier"``: xavier-uniform over its flattened weight, OmniMAE).
    ``positions="spacetime"``: MVD's student table (:func:`spacetime_sincos_table`) instead."""

    num_prefix_tokens = 0

    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 patch_size: int = 16, tubelet_size: int = 2, in_chans: int = 3, num_frames: int = 16,
                 img_size: int = 224, qkv_bias: bool | str = "qv", norm_eps: float = 1e-6, drop_path_rate: float = 0.0,
                 mask_token: bool = False, embed_init: str = "default", positions: str = "sinusoid") -> None:
        super().__init__()
        self.embed_dim, self.in_chans = embed_dim, in_chans
        self.cube = (tubelet_size, patch_size, patch_size)
        self.grid_size = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.patch_embed = CubeEmbed(in_chans, embed_dim, self.cube)
        if embed_init == "xavier":  # OmniMAE's reshape_and_init_as_mlp; VideoMAE keeps Conv3d's default
            nn.init.xavier_uniform_(self.patch_embed.proj.weight.view(embed_dim, -1))
        elif embed_init != "default":
            raise ValueError(f"embed_init must be 'default' or 'xavier', got {embed_init!r}")
        if positions not in ("sinusoid", "spacetime"):
            raise ValueError(f"video encoder positions must be 'sinusoid' or 'spacetime', got {positions!r}")
        self.positions: nn.Module = SpaceTimePositions(embed_dim, self.grid_size) if positions == "spacetime" else \
            SinusoidPositions(embed_dim, self.grid_size[0] * self.grid_size[1] * self.grid_size[2])
        self.norm_pre = nn.Identity()
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, norm_eps, drop_path_rate, qkv_bias=qkv_bias)
        self.norm: nn.Module = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.blocks.apply(init_mae_weights)
        init_mae_weights(self.norm)
        if mask_token:
            self.add_mask_token(embed_dim)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        weight = self.patch_embed.proj.weight  # (D, C, τ, p, q) → (D, τ·p·q·C), the cube layout
        if values.shape[-1] != weight[0].numel():
            raise ValueError(f"encoder expects {'×'.join(map(str, self.cube))} cubes with {self.in_chans} channels "
                             f"({weight[0].numel()} values per token), got {values.shape[-1]}")
        matrix = weight.permute(0, 2, 3, 4, 1).reshape(weight.shape[0], -1)
        return nn.functional.linear(values, matrix, self.patch_embed.proj.bias)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        return self.positions(tokens).to(self.patch_embed.proj.weight.dtype)

    def prefix_tokens(self) -> torch.Tensor:
        return self.patch_embed.proj.weight.new_zeros(1, 0, self.embed_dim)


class VideoMAEDecoder(MAEDecoder):
    """VideoMAE's decoder: Linear to the decoder width *without bias* (PyTorch's default init, as
    the reference leaves it), a mask token (truncated normal ±0.02) for every removed cube, the
    sinusoid table at the decoder width, blocks with q/v biases, LayerNorm, Linear to τ·p·q·C.

    The reference feeds [visible, mask tokens] and predicts the mask tokens only; attention does
    not depend on token order, so the same blocks run here in token order and every token is
    predicted (the loss reads the removed ones: identical values, a test pins it)."""

    def __init__(self, encoder_dim: int, out_dim: int, num_positions: int = 1568, embed_dim: int = 384,
                 depth: int = 4, num_heads: int = 6, mlp_ratio: float = 4.0, qkv_bias: bool | str = "qv",
                 norm_eps: float = 1e-6) -> None:
        super().__init__(encoder_dim, out_dim, grid_size=1, embed_dim=embed_dim, depth=0, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, num_prefix_tokens=0, norm_eps=norm_eps)
        del self.pos_embed  # the sinusoid table, looked up per token
        self.positions = SinusoidPositions(embed_dim, num_positions)
        self.embed = nn.Linear(encoder_dim, embed_dim, bias=False)
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, norm_eps, qkv_bias=qkv_bias)
        self.blocks.apply(init_mae_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        return self.positions(tokens)


class OmniMAEDecoder(MAEDecoder):
    """OmniMAE's decoder: the encoder's (normed) output with a zero-initialised mask token *at the
    encoder width* scattered into the removed places, the sinusoid table at the encoder width
    added, then Linear to the decoder width, blocks (fused qkv bias), LayerNorm eps 1e-6, and a
    Linear (truncated normal 0.02) predicting every token."""

    def __init__(self, encoder_dim: int, out_dim: int, num_positions: int = 1568, embed_dim: int = 384,
                 depth: int = 4, num_heads: int = 16, mlp_ratio: float = 4.0, norm_eps: float = 1e-6) -> None:
        super().__init__(encoder_dim, out_dim, grid_size=1, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, num_prefix_tokens=0, norm_eps=norm_eps)
        del self.pos_embed
        self.positions = SinusoidPositions(encoder_dim, num_positions)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder_dim))  # zeros "following iBOT"
        nn.init.trunc_normal_(self.pred.weight, std=0.02)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        x = fill_mask_tokens(latents, mask.ids_restore, self.mask_token)
        x = self.embed(x + self.positions(tokens).to(x.dtype))
        return self.pred(self.norm(self.blocks(x)))


class SourceRatioMasker(RandomMasker):
    """OmniMAE's random masking with one ratio for images (clips of one time slice) and another
    for videos (paper: 0.9 / 0.95; the released configs 0.75 / 0.9); the removed count is
    ``int(ratio·N)`` as the reference's ``RandMasking``."""

    def __init__(self, image_ratio: float = 0.9, video_ratio: float = 0.95) -> None:
        super().__init__(video_ratio, rounding="removed")
        self.image_masker = RandomMasker(image_ratio, rounding="removed")

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        if tuple(tokens.meta.get("grid_size", (0,)))[0] == 1:
            return self.image_masker(tokens, noise)
        return super().forward(tokens, noise)

    def extra_repr(self) -> str:
        return f"image_ratio={self.image_masker.mask_ratio}, video_ratio={self.mask_ratio}"


class VideoMAE(MaskedAutoencoder):
    """A masked autoencoder over clips; pictures are frame strips (see :mod:`maekit_video.visualize`)."""

    picture_scale = 2

    def panels(self, images: torch.Tensor, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        from maekit.model import seeded_noise
        from maekit_video.visualize import clip_panels

        self.eval()
        with torch.no_grad():
            out = self.run_steps(images, noise=seeded_noise(seed))
        return clip_panels(self, out, mean or IMAGENET_MEAN, std or IMAGENET_STD)

    def panel_titles(self) -> PanelTitles:
        """:meth:`panels` draws one row per kind and clip (frames left to right): input | masked |
        reconstruction + visible, the last only for a target that turns back into pixels."""
        from maekit_video.visualize import clip_titles

        return clip_titles(self)


class MaskFeat(MaskTokenModel, VideoMAE):
    """MaskFeat: every cube (or patch) enters the encoder, removed ones as the mask token; a head
    (LayerNorm + Linear, as SlowFast's ``MSSeparateHead``) reads the last block's output — before
    the encoder's final norm — and predicts each token's HOG; MSE over removed tokens."""

    encoder_taps = (-1,)

    def decode(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
               taps: dict[int, torch.Tensor] | None = None) -> Prediction:
        assert taps is not None
        return self.decoder(taps[-1], mask, tokens)


def _encoder_cfg(size: str | None, encoder: dict[str, Any] | None, method: str) -> dict[str, Any]:
    if size is None:
        if not encoder or not {"embed_dim", "depth", "num_heads"} <= set(encoder):
            raise ValueError(f"{method} with size=None needs encoder=dict(embed_dim=..., depth=..., num_heads=...)")
        return dict(encoder)
    if size not in VIDEO_SIZES:
        raise ValueError(f"{method} size must be one of {', '.join(VIDEO_SIZES)} (or None with encoder=...), got {size!r}")
    dim, depth, heads = VIDEO_SIZES[size]
    return {"embed_dim": dim, "depth": depth, "num_heads": heads, **(encoder or {})}


def _video_encoder(size: str | None, encoder: dict[str, Any] | None, method: str, num_frames: int, img_size: int,
                   patch_size: int, tubelet_size: int, in_chans: int, drop_path_rate: float, **options: Any) -> VideoViTEncoder:
    cfg = _encoder_cfg(size, encoder, method)
    return VideoViTEncoder(**{**dict(num_frames=num_frames, img_size=img_size, patch_size=patch_size,
                                     tubelet_size=tubelet_size, in_chans=in_chans, drop_path_rate=drop_path_rate,
                                     **options), **cfg})


def _norm_pix_target(pixel_mean: tuple[float, ...], pixel_std: tuple[float, ...], eps_in_sqrt: bool) -> dict[str, Any]:
    return dict(type="norm_pixels", per_channel=True, eps=1e-6, unbiased=True, eps_in_sqrt=eps_in_sqrt,
                pixel_mean=tuple(pixel_mean), pixel_std=tuple(pixel_std))


def videomae(size: str | None = "base", num_frames: int = 16, img_size: int = 224, patch_size: int = 16,
             tubelet_size: int = 2, in_chans: int = 3, mask_ratio: float = 0.9, masking: str = "tube",
             encoder: dict[str, Any] | None = None, decoder_embed_dim: int | None = None, decoder_depth: int = 4,
             decoder_num_heads: int | None = None, drop_path_rate: float = 0.0,
             pixel_mean: tuple[float, ...] = IMAGENET_MEAN, pixel_std: tuple[float, ...] = IMAGENET_STD) -> VideoMAE:
    """VideoMAE (Tong et al., 2022): tube masking at 0.9, the target per cube and channel
    (x − mean)/(std + 1e-6) of the [0, 1] pixels (``pixel_mean``/``pixel_std`` undo the input
    normalisation), MSE over removed cubes. ``masking="random"``: random cubes, ``int(0.9·N)`` removed."""
    if masking not in ("tube", "random"):
        raise ValueError(f"videomae masking must be 'tube' or 'random', got {masking!r}")
    enc = _video_encoder(size, encoder, "videomae", num_frames, img_size, patch_size, tubelet_size, in_chans,
                         drop_path_rate)
    dim, heads = VIDEOMAE_DECODERS.get(size or "", (None, None))
    if (decoder_embed_dim or dim) is None or (decoder_num_heads or heads) is None:
        raise ValueError("videomae with size=None needs decoder_embed_dim and decoder_num_heads")
    grid = enc.grid_size
    return VideoMAE(
        patchifier=dict(type="cube_patches", patch_size=patch_size, tubelet_size=tubelet_size, in_chans=in_chans),
        masker=dict(type="tube_mask", mask_ratio=mask_ratio) if masking == "tube"
        else dict(type="random_mask", mask_ratio=mask_ratio, rounding="removed"),
        encoder=enc,
        decoder=VideoMAEDecoder(enc.embed_dim, tubelet_size * patch_size * patch_size * in_chans,
                                grid[0] * grid[1] * grid[2], decoder_embed_dim or dim, decoder_depth,  # type: ignore[arg-type]
                                decoder_num_heads or heads),  # type: ignore[arg-type]
        target=_norm_pix_target(pixel_mean, pixel_std, eps_in_sqrt=False),
        loss=dict(type="masked_mse"))


def omnimae(size: str | None = "base", num_frames: int = 16, img_size: int = 224, patch_size: int = 16,
            tubelet_size: int = 2, in_chans: int = 3, image_mask_ratio: float = 0.9, video_mask_ratio: float = 0.95,
            encoder: dict[str, Any] | None = None, decoder_embed_dim: int | None = None, decoder_depth: int = 4,
            decoder_num_heads: int = 16, drop_path_rate: float = 0.0,
            pixel_mean: tuple[float, ...] = IMAGENET_MEAN, pixel_std: tuple[float, ...] = IMAGENET_STD) -> VideoMAE:
    """OmniMAE (Girdhar et al., 2023): one ViT for images (repeated to one 2-frame tubelet) and
    videos, random masking at the paper's 0.9 (images) / 0.95 (videos), the target per patch and
    channel (x − mean)/√(var + 1e-6) of [0, 1] pixels, MSE over removed tokens. The encoder has a
    fused qkv bias; decoder 384 wide (B; 512 for L and H), 4 blocks of 16 heads."""
    enc = _video_encoder(size, encoder, "omnimae", num_frames, img_size, patch_size, tubelet_size, in_chans,
                         drop_path_rate, qkv_bias=True, embed_init="xavier")
    grid = enc.grid_size
    width = decoder_embed_dim or (384 if size in ("small", "base") else 512)
    return VideoMAE(
        patchifier=dict(type="cube_patches", patch_size=patch_size, tubelet_size=tubelet_size, in_chans=in_chans),
        masker=SourceRatioMasker(image_mask_ratio, video_mask_ratio),
        encoder=enc,
        decoder=OmniMAEDecoder(enc.embed_dim, tubelet_size * patch_size * patch_size * in_chans,
                               grid[0] * grid[1] * grid[2], width, decoder_depth, decoder_num_heads),
        target=_norm_pix_target(pixel_mean, pixel_std, eps_in_sqrt=True),
        loss=dict(type="masked_mse"))


def maskfeat(size: str | None = "base", video: bool = True, num_frames: int = 16, img_size: int = 224,
             patch_size: int = 16, tubelet_size: int = 2, in_chans: int = 3, mask_ratio: float = 0.4,
             encoder: dict[str, Any] | None = None, nbins: int = 9, cell: int = 8, drop_path_rate: float = 0.0) -> MaskFeat:
    """MaskFeat (Wei et al., 2022): mask tokens inside the encoder, blockwise masking at 0.4 (video:
    cuboids on a window of 2×2-cube units, MaskFeat's 8×7×7 for 16×224²; images: BEiT-style
    rectangles on the patch grid), the HOG of each token (9 bins, 8-pixel cells, 108 values per
    16×16 RGB patch; a cube's first frame) predicted by a LayerNorm + Linear head; MSE over
    removed tokens. ``video=False``: the image model, a timm ViT with a class token."""
    cfg = _encoder_cfg(size, encoder, "maskfeat")
    hog_dim = in_chans * nbins * (patch_size // cell) ** 2
    if video:
        enc: TokenEncoder = _video_encoder(None, cfg, "maskfeat", num_frames, img_size, patch_size, tubelet_size,
                                           in_chans, drop_path_rate, qkv_bias=True, mask_token=True)
        grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        patchifier = dict(type="cube_patches", patch_size=patch_size, tubelet_size=tubelet_size, in_chans=in_chans)
        masker = dict(type="blockwise_mask", mask_ratio=mask_ratio, window=(grid[0], grid[1] // 2, grid[2] // 2))
    else:
        from maekit.registry import build

        enc = build("encoder", dict(type="vit_encoder", model_name="vit_base_patch16_224", img_size=img_size,
                                    patch_size=patch_size, in_chans=in_chans, drop_path_rate=drop_path_rate,
                                    mask_token=True, fixed_pos_embed=False, **cfg))
        patchifier = dict(type="image_patches", patch_size=patch_size, in_chans=in_chans)
        masker = dict(type="blockwise_mask", mask_ratio=mask_ratio)
    head = MaskFeatHead(enc.embed_dim, hog_dim, enc.num_prefix_tokens)
    return MaskFeat(patchifier=patchifier, masker=masker, encoder=enc, decoder=head,
                    target=dict(type="hog", nbins=nbins, cell=cell), loss=dict(type="masked_mse"))


class MaskFeatHead(nn.Module):
    """SlowFast's ``MSSeparateHead`` projection: LayerNorm (eps 1e-6) + Linear (truncated normal
    0.02, zero bias) over every token; prefix (cls) outputs dropped."""

    def __init__(self, encoder_dim: int, out_dim: int, num_prefix_tokens: int = 0) -> None:
        super().__init__()
        from maekit.nn.decoder import LinearHead

        self.num_prefix_tokens = num_prefix_tokens
        self.norm = nn.LayerNorm(encoder_dim, eps=1e-6)
        self.head = LinearHead(encoder_dim, out_dim, num_prefix_tokens)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        return self.head(self.norm(latents), mask, tokens)


class VideoClassifier(ViTClassifier):
    """Fine-tuning as VideoMAE: mean of every token, ``fc_norm``, Linear (the encoder's final norm
    dropped, the reference's ``use_mean_pooling``). Several clips per sample (B, V, C, T, H, W):
    while training they are repeated augmentations, each a sample with the sample's label; in
    evaluation they are test views (K clips × crops) whose softmax outputs are averaged."""

    def __init__(self, patchifier: nn.Module, encoder: TokenEncoder, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__(patchifier, encoder, num_classes, "avg", label_smoothing)
        encoder.norm = nn.Identity()

    @staticmethod
    def views_of(batch: Any) -> int:
        inputs = batch["inputs"] if isinstance(batch, dict) else batch
        return inputs.shape[1] if inputs.dim() == 6 else 1

    def classify(self, batch: Any) -> torch.Tensor:
        logits = super().classify(batch)
        views = self.views_of(batch)
        if views == 1 or self.training:
            return logits
        # test views: average the softmax outputs (VideoMAE's merge), returned as log-probabilities
        return logits.softmax(-1).unflatten(0, (-1, views)).mean(dim=1).log()

    def forward(self, batch: dict, noise: Any = None) -> dict[str, torch.Tensor]:
        views = self.views_of(batch)
        if views > 1 and self.training:  # augmented copies: each a sample; test views are merged instead
            batch = {**batch, "label": torch.as_tensor(batch["label"]).repeat_interleave(views)}
        return super().forward(batch, noise)


def video_classifier(model: dict, num_classes: int, checkpoint: str | None = None, drop_path_rate: float = 0.1,
                     label_smoothing: float = 0.1) -> VideoClassifier:
    """The encoder of a (pre-trained) video method config + VideoMAE's fine-tuning head."""
    from maekit.eval.probe import load_trained_model

    method = load_trained_model({**model, "drop_path_rate": drop_path_rate}, checkpoint).train()
    return VideoClassifier(method.patchifier, method.encoder, num_classes, label_smoothing)
