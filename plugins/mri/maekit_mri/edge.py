"""Edge-MAE (Li et al., SLMT-Net pre-training): MAE on single-channel MR slices whose decoder also
predicts the Sobel edge map, with a loss that weighs a masked patch more the more of its
neighbours were masked. Reference: lyhkevin/EdgeMAE (model/EdgeMAE.py, utils/operator.py)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskedAutoencoder, seeded_noise
from maekit.nn.base import Loss, Target
from maekit.nn.decoder import MAEDecoder
from maekit.nn.patchify import as_pair, patchify, unpatchify
from maekit.ops import masked_mean
from maekit.structures import Mask, Tokens

__all__ = ["sobel_magnitude", "neighbourhood_weights", "PixelAndEdgeHeads", "EdgeMAEDecoder", "PixelsAndEdges", "EdgeMAELoss",
           "EdgeMAE", "edge_mae"]

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """sqrt(Gx² + Gy²) of B×1×H×W images with the 3×3 Sobel kernels, replication padding, clipped
    to ≤ 1 (the reference's ``Sobel`` operator)."""
    kernels = torch.stack([SOBEL_X, SOBEL_X.T])[:, None].to(images)
    gradients = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernels)
    return gradients.pow(2).sum(1, keepdim=True).sqrt().clamp(max=1.0)


def neighbourhood_weights(masked: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """Edge-MAE's patch-wise weight per token (B×N): 1 + the masked share of its 3×3 token
    neighbourhood, itself included, zero padding counted (``1 + avg_pool2d(mask, 3, 1, 1)``)."""
    height, width = grid_size
    if masked.shape[1] != height * width:
        raise ValueError(f"mask has {masked.shape[1]} tokens, the {height}×{width} grid {height * width}")
    grid = masked.float().view(-1, 1, height, width)
    return 1 + F.avg_pool2d(grid, kernel_size=3, stride=1, padding=1, count_include_pad=True).flatten(1)


class PixelAndEdgeHeads(nn.Module):
    """Two heads on the shared decoder trunk, each LayerNorm → Linear(p·q) → Sigmoid; outputs
    concatenated per token: [pixels | edges]."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.pixels = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out_dim), nn.Sigmoid())
        self.edges = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out_dim), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pixels(x), self.edges(x)], dim=-1)


class EdgeMAEDecoder(MAEDecoder):
    """The MAE decoder as Edge-MAE uses it: mask tokens, fixed sin-cos positions, ``depth`` blocks
    (no final norm: each head has its own), then :class:`PixelAndEdgeHeads`; output B×N×2·p·q."""

    def __init__(self, encoder_dim: int, patch_pixels: int, grid_size: int | tuple[int, int] = 32,
                 embed_dim: int = 64, depth: int = 8, num_heads: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__(encoder_dim, 2 * patch_pixels, grid_size, embed_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.Identity()
        self.pred = PixelAndEdgeHeads(embed_dim, patch_pixels)
        self.pred.apply(lambda m: nn.init.xavier_uniform_(m.weight) if isinstance(m, nn.Linear) else None)
        self.pred.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)


class PixelsAndEdges(Target):
    """Per token: the patch's pixels and its part of the Sobel magnitude of the whole (unmasked)
    image, [pixels | edges] (B×N×2·p·q). Single-channel images."""

    def forward(self, tokens: Tokens, batch=None) -> torch.Tensor:
        images = unpatchify(tokens.values, tokens.meta["grid_size"], tokens.meta["patch_size"])
        if images.shape[1] != 1:
            raise ValueError(f"Edge-MAE takes single-channel slices, got {images.shape[1]} channels")
        edges = patchify(sobel_magnitude(images), tokens.meta["patch_size"])
        return torch.cat([tokens.values, edges], dim=-1)


class EdgeMAELoss(Loss):
    """Edge-MAE's loss: per token the squared error averaged over the patch, times the patch-wise
    weight (:func:`neighbourhood_weights`: always for edges, for pixels when ``patch_wise``), summed
    over removed tokens and divided by their count; total ``rec_weight · pixels + edge_weight · edges``
    (10 and 1 in the reference's training script)."""

    def __init__(self, grid_size: int | tuple[int, int] = 32, rec_weight: float = 10.0, edge_weight: float = 1.0,
                 patch_wise: bool = True) -> None:
        super().__init__()
        self.grid_size = as_pair(grid_size, "grid_size")
        self.rec_weight, self.edge_weight, self.patch_wise = rec_weight, edge_weight, patch_wise

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: Mask) -> dict[str, torch.Tensor]:
        half = pred.shape[-1] // 2
        error = (pred.float() - target.float()) ** 2
        weights = neighbourhood_weights(mask.masked, self.grid_size)
        masked = mask.masked.float()
        pixel_error = error[..., :half].mean(-1) * (weights if self.patch_wise else 1)
        edge_error = error[..., half:].mean(-1) * weights
        reconstruction = masked_mean(pixel_error, masked)
        edges = masked_mean(edge_error, masked)
        total = self.rec_weight * reconstruction + self.edge_weight * edges
        return {"loss": total, "loss_reconstruction": reconstruction, "loss_edges": edges}


class EdgeMAE(MaskedAutoencoder):
    """Edge-MAE: core's pass with :class:`EdgeMAEDecoder`, :class:`PixelsAndEdges` and
    :class:`EdgeMAELoss`; only the picture is its own (pixels and edges side by side)."""

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean, std, seed: int = 0) -> list[list]:
        """Rows of: input | masked input | reconstruction with the visible patches | Sobel edges of
        the input | predicted edges of the removed patches with the visible patches' own."""
        from maekit.eval.visualize import uint8_panels

        self.eval()
        out = self.run_steps(images, seeded_noise(seed))
        tokens, pred, mask, target = out.tokens, out.pred, out.mask, out.target
        half = pred.shape[-1] // 2
        removed = mask.masked[..., None]
        meta = tokens.meta

        def show(values: torch.Tensor) -> list:
            return uint8_panels(unpatchify(values, meta["grid_size"], meta["patch_size"]))

        columns = [show(tokens.values), show(tokens.values * (1 - removed) + 0.5 * removed),
                   show(tokens.values * (1 - removed) + pred[..., :half] * removed),
                   show(target[..., half:]), show(target[..., half:] * (1 - removed) + pred[..., half:] * removed)]
        return [list(row) for row in zip(*columns)]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`."""
        return PanelTitles(columns=("input", "masked", "reconstruction + visible", "Sobel edges",
                                    "predicted edges + visible"))


def edge_mae(img_size: int | tuple[int, int] = 256, patch_size: int = 8, embed_dim: int = 128, depth: int = 12,
             num_heads: int = 16, decoder_embed_dim: int = 64, decoder_depth: int = 8, decoder_num_heads: int = 8,
             mask_ratio: float = 0.7, rec_weight: float = 10.0, edge_weight: float = 1.0, patch_wise: bool = True,
             drop_path_rate: float = 0.0) -> MaskedAutoencoder:
    """Edge-MAE with the paper's sizes: 256 px, patch 8 (1024 tokens), mask 0.7, encoder 128 wide,
    12 blocks, 16 heads (a timm ViT with one input channel), decoder 64 wide, 8 blocks, 8 heads."""
    size = as_pair(img_size, "img_size")
    if size[0] % patch_size or size[1] % patch_size:
        raise ValueError(f"img_size {size} is not divisible by patch_size {patch_size}")
    grid = (size[0] // patch_size, size[1] // patch_size)
    encoder = dict(type="vit_encoder", model_name="vit_tiny_patch16_224", img_size=size, patch_size=patch_size,
                   in_chans=1, embed_dim=embed_dim, depth=depth, num_heads=num_heads, drop_path_rate=drop_path_rate)
    return EdgeMAE(
        patchifier=dict(type="image_patches", patch_size=patch_size, in_chans=1),
        masker=dict(type="random_mask", mask_ratio=mask_ratio),
        encoder=encoder,
        decoder=EdgeMAEDecoder(embed_dim, patch_size * patch_size, grid, decoder_embed_dim, decoder_depth,
                               decoder_num_heads),
        target=PixelsAndEdges(),
        loss=EdgeMAELoss(grid, rec_weight, edge_weight, patch_wise),
    )
