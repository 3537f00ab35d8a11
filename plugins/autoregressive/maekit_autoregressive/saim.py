"""SAIM (Qi et al., AAAI 2023): autoregressive image modelling in a random order, with two streams.

Nothing is dropped. Each image draws an order u ~ U(0, 1) per patch. The content stream (the ViT
encoder) lets patch i attend to patch j when u_j ≤ u_i (itself and earlier ones); the query
stream, starting from the fixed position table, lets i attend only to strictly earlier patches
(u_j < u_i), reading the content stream's state at each of its layers. The class token attends
only to itself and every token may attend to it. The query stream predicts every patch of the
Gaussian-blurred (9×9, σ 1), per-patch normalised image; the loss is the MSE over all patches.
Layout as qiy20/SAIM's ``models_saim.py`` (``generate_attention_mask``, ``forward_saim``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from maekit.eval.visualize import PanelTitles
from maekit.methods.mae import build_vit_encoder
from maekit.model import MaskedAutoencoder
from maekit.nn.attention import CrossAttentionBlock
from maekit.nn.base import Decoder, Masker, NoiseSource
from maekit.nn.masking import draw_noise
from maekit.nn.patchify import patchify, unpatchify
from maekit.nn.pos_embed import sincos_2d_table
from maekit.nn.targets import NormPixelTarget
from maekit.ops import init_mae_weights
from maekit.structures import Mask, Prediction, Tokens

__all__ = ["RandomOrderMasker", "content_attention_mask", "query_attention_mask", "QueryStreamDecoder",
           "BlurredNormPixelTarget", "gaussian_kernel", "SAIM", "saim"]


class RandomOrderMasker(Masker):
    """SAIM's order: u ~ U(0, 1) per token (``Mask.order``); every token stays (nothing removed)."""

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        order = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        mask = Mask.keep_all(tokens.batch_size, tokens.num_tokens, tokens.values.device)
        return replace(mask, order=order)


def _with_cls(sees: torch.Tensor) -> torch.Tensor:
    """Token-to-token visibility B×N×N → B×1×(1+N)×(1+N) with the class token first: it sees only
    itself, and every token sees it."""
    batch, length, _ = sees.shape
    full = torch.zeros(batch, length + 1, length + 1, dtype=torch.bool, device=sees.device)
    full[:, :, 0] = True
    full[:, 1:, 1:] = sees
    return full.unsqueeze(1)


def content_attention_mask(order: torch.Tensor) -> torch.Tensor:
    """The content stream's mask (True = may attend): i sees j iff u_j ≤ u_i."""
    return _with_cls(order.unsqueeze(1) <= order.unsqueeze(2))


def query_attention_mask(order: torch.Tensor) -> torch.Tensor:
    """The query stream's mask: i sees j iff u_j < u_i (strictly earlier; the first token sees
    only the class token)."""
    return _with_cls(order.unsqueeze(1) < order.unsqueeze(2))


class QueryStreamDecoder(Decoder):
    """SAIM's query stream: starts as the fixed 2-D sin-cos table (zero class row), one block per
    ``step`` encoder blocks; block k's queries are its own stream, its keys and values the content
    stream after encoder block (k+1)·step, both through the block's one LayerNorm; then LayerNorm
    and the prediction head (an MLP D → 4D → p²C, or a Linear). Blocks init xavier-uniform, as the
    reference (its separate k and v matrices each)."""

    def __init__(self, embed_dim: int, grid_size: Sequence[int], depth: int, num_heads: int, out_dim: int,
                 mlp_ratio: float = 4.0, head: str = "mlp") -> None:
        super().__init__()
        from timm.layers import Mlp

        if head not in ("mlp", "linear"):
            raise ValueError(f"SAIM's prediction head is 'mlp' or 'linear', got {head!r}")
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        self.register_buffer("pos_embed", sincos_2d_table(self.grid_size, embed_dim, 1), persistent=False)
        self.blocks = nn.ModuleList(CrossAttentionBlock(embed_dim, num_heads, mlp_ratio=mlp_ratio, order=("cross", "mlp"),
                                                        shared_norm=True) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = Mlp(embed_dim, int(embed_dim * mlp_ratio), out_dim) if head == "mlp" else nn.Linear(embed_dim, out_dim)
        self.apply(init_mae_weights)
        for block in self.blocks:
            for half in block.cross_attn.key_value.weight.data.chunk(2):
                nn.init.xavier_uniform_(half)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
                states: dict[int, torch.Tensor] | None = None) -> Prediction:
        if mask.order is None or not states or len(states) != len(self.blocks):
            raise ValueError(f"the query stream reads an order and the content stream after {len(self.blocks)} encoder "
                             f"blocks; got order={mask.order is not None}, {len(states or {})} states")
        if tuple(tokens.meta.get("grid_size", self.grid_size)) != self.grid_size:
            raise ValueError(f"SAIM's query stream was built for a {self.grid_size} grid, got {tokens.meta['grid_size']}")
        index = (tokens.coords[..., 0] * self.grid_size[1] + tokens.coords[..., 1]).long() + 1
        table = self.pos_embed[0]
        queries = torch.cat([table[:1].expand(len(index), 1, -1), table[index]], dim=1).to(latents.dtype)
        attn_mask = query_attention_mask(mask.order)
        for block, tap in zip(self.blocks, sorted(states)):
            queries = block(queries, states[tap], attn_mask)
        return self.head(self.norm(queries))[:, 1:]


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """The normalised size×size Gaussian of the reference's ``GaussianConv2d``."""
    position = torch.arange(size, dtype=torch.float64) - (size - 1) // 2
    kernel = torch.exp(-(position[:, None] ** 2 + position[None, :] ** 2) / (2 * sigma ** 2))
    return (kernel / kernel.sum()).float()


class BlurredNormPixelTarget(NormPixelTarget):
    """SAIM's target: the (normalised) image blurred by a ``kernel_size`` Gaussian of ``sigma``,
    per channel, zero-padded at the borders as the reference's ``F.conv2d``, then per-patch
    normalised (``norm_pix=False``: the blurred pixels as they are)."""

    def __init__(self, kernel_size: int = 9, sigma: float = 1.0, norm_pix: bool = True) -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0 or not sigma > 0:
            raise ValueError(f"SAIM's blur needs an odd kernel_size ≥ 1 and sigma > 0, got {kernel_size!r}, {sigma!r}")
        self.kernel_size, self.norm_pix = kernel_size, norm_pix
        self.register_buffer("kernel", gaussian_kernel(kernel_size, sigma), persistent=False)

    def pixels(self, tokens: Tokens) -> torch.Tensor:
        grid, patch = tokens.meta["grid_size"], tokens.meta["patch_size"]
        images = unpatchify(tokens.values, grid, patch).float()
        channels = images.shape[1]
        weight = self.kernel.expand(channels, 1, -1, -1)
        # float32 under autocast too: per-patch statistics of blurred (low-variance) patches need it
        with torch.autocast(images.device.type, enabled=False):
            blurred = F.conv2d(images, weight, padding=self.kernel_size // 2, groups=channels)
        return patchify(blurred, patch)

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        return super().forward(tokens, batch) if self.norm_pix else self.pixels(tokens)

    def to_values(self, pred: Prediction, tokens: Tokens) -> torch.Tensor:
        if not self.norm_pix and isinstance(pred, torch.Tensor):
            return pred
        return super().to_values(pred, tokens)


class SAIM(MaskedAutoencoder):
    """SAIM as core's pass: tokenize → draw the order → blurred target → content stream over every
    patch (its attention mask from the order, kept at every ``step``-th block) → query stream →
    MSE over all patches. ``encode`` (probing, fine-tuning) is the plain ViT: no order, full attention."""

    def __init__(self, *args: Any, query_depth: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        depth = len(self.encoder.blocks)  # type: ignore[arg-type]
        query_depth = depth if query_depth is None else query_depth
        if not isinstance(query_depth, int) or query_depth < 1 or depth % query_depth:
            raise ValueError(f"SAIM's query stream has one block per depth/query_depth encoder blocks: query_depth "
                             f"{query_depth} must divide the encoder's depth {depth}")
        step = depth // query_depth
        self.encoder_taps = tuple(range(step, depth + 1, step))
        # The reference's pre-training ViT has no final norm (the query stream reads block outputs):
        # ours stays at its identity init, untrained, so DDP finds no parameter without a gradient
        # and downstream code starts from the norm a fresh ViT would have.
        self.encoder.norm.requires_grad_(False)

    def encoder_input(self, batch: Any, tokens: Tokens, mask: Mask) -> Tokens:
        if mask.order is None:
            raise ValueError(f"SAIM needs a masker that draws an order (random_order), got {type(self.masker).__name__}")
        return replace(tokens, meta={**tokens.meta, "attn_mask": content_attention_mask(mask.order)})

    def decode(self, latents: torch.Tensor, mask: Mask, tokens: Tokens,
               taps: dict[int, torch.Tensor] | None = None) -> Prediction:
        return self.decoder(latents, mask, tokens, taps)

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """input | the blurred target | the prediction of every patch from the patches before it in a
        random order (norm-pix predictions get each blurred patch's mean and variance back). Nothing
        is hidden, so core's masked / pasted panels would only repeat the input."""
        from maekit.eval.visualize import denormalised_panels
        from maekit.model import seeded_noise

        self.eval()
        out = self.run_steps(images, noise=seeded_noise(seed))
        target: Any = self.target  # a BlurredNormPixelTarget
        columns = [denormalised_panels(self.patchifier.unpatchify(values, out.tokens.meta), mean, std)
                   for values in (out.tokens.values, target.pixels(out.tokens), target.to_values(out.pred, out.tokens))]
        return [list(row) for row in zip(*columns)]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`."""
        return PanelTitles(columns=("input", "blurred target", "prediction (random order)"))


def saim(size: str | None = "base", encoder_name: str | None = None, img_size: int | Sequence[int] = 224,
         patch_size: int | None = None, in_chans: int = 3, encoder: dict | None = None, query_depth: int | None = None,
         prediction_head: str = "mlp", blur_kernel_size: int = 9, blur_sigma: float = 1.0, norm_pix_loss: bool = True,
         drop_path_rate: float = 0.0) -> SAIM:
    """SAIM with a ViT of a size preset or timm ``encoder_name`` (``encoder``: overrides such as
    ``embed_dim``, ``depth``, ``num_heads``); a query stream of ``query_depth`` blocks (default:
    the encoder's depth, the reference's 12 for ViT-B); an MLP head; the 9×9, σ 1 blurred,
    per-patch normalised target; MSE over every patch."""
    vit = build_vit_encoder(size, encoder_name, img_size, patch_size, in_chans, encoder, drop_path_rate, method="saim")
    for block in vit.blocks:  # the reference's blocks have separate q, k, v matrices, each xavier-initialised
        for part in block.attn.qkv.weight.data.chunk(3):
            nn.init.xavier_uniform_(part)
    patch = tuple(vit.patch_size)
    depth, heads = len(vit.blocks), vit.blocks[0].attn.num_heads
    mlp_ratio = vit.blocks[0].mlp.fc1.out_features / vit.embed_dim
    return SAIM(
        patchifier=dict(type="image_patches", patch_size=patch, in_chans=in_chans),
        masker=dict(type="random_order"),
        encoder=vit,
        decoder=QueryStreamDecoder(vit.embed_dim, vit.grid_size, depth if query_depth is None else query_depth, heads,
                                   patch[0] * patch[1] * in_chans, mlp_ratio, prediction_head),
        target=BlurredNormPixelTarget(blur_kernel_size, blur_sigma, norm_pix_loss),
        loss=dict(type="masked_mse", reduction="all"),
        query_depth=query_depth,
    )
