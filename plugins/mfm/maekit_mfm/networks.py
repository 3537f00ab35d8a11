"""MFM's networks: a timm CNN as an encoder of whole images, and the conv + PixelShuffle head
(optionally after a light transformer decoder)."""
from __future__ import annotations

import torch
from torch import nn

from maekit.nn.base import Decoder, Encoder
from maekit.nn.encoder import make_blocks
from maekit.nn.patchify import as_pair, unpatchify
from maekit.nn.pos_embed import resample_grid_table
from maekit.structures import Mask, Tokens

__all__ = ["CNNEncoder", "PixelShuffleHead"]


class CNNEncoder(Encoder):
    """Any timm CNN (ResNet-50 in the MFM paper) or hierarchical model with a final feature map
    (ConvNeXt; Swin, channels-last, at the image size it was built for) as an encoder of whole images.

    It takes the image's tokens (patches of ``patch_size`` = the network's stride, so no pixel is
    lost), reassembles the image, runs ``forward_features`` and returns the final feature map as
    tokens B×(h·w)×D in row-major order; there is no class token (``num_prefix_tokens`` 0), so mean
    pooling of the tokens is the network's global average pool.
    """

    num_prefix_tokens = 0

    def __init__(self, model_name: str = "resnet50", in_chans: int = 3, drop_path_rate: float = 0.0,
                 **timm_kwargs) -> None:
        super().__init__()
        import timm

        if not timm.is_model(model_name):
            raise ValueError(f"encoder model_name {model_name!r} is not a timm model name (e.g. resnet50)")
        self.model_name, self.in_chans = model_name, in_chans
        self.network = timm.create_model(model_name, pretrained=False, num_classes=0, global_pool="",
                                         in_chans=in_chans, drop_path_rate=drop_path_rate, **timm_kwargs)
        reduction = self.network.feature_info[-1]["reduction"] if getattr(self.network, "feature_info", None) else None
        if reduction is None:
            raise ValueError(f"timm model {model_name!r} reports no feature stride (feature_info); use a CNN such as resnet50")
        self.stride: int = int(reduction)
        self.patch_size: tuple[int, int] = (self.stride, self.stride)
        self.embed_dim: int = int(self.network.num_features)

    def forward(self, tokens: Tokens) -> torch.Tensor:
        images = unpatchify(tokens.values, tokens.meta["grid_size"], tokens.meta["patch_size"])
        features = self.network.forward_features(images)
        if features.dim() != 4:
            raise ValueError(f"timm model {self.model_name!r} gave features of shape {tuple(features.shape)}; "
                             f"a CNN feature map B×D×h×w was expected")
        if getattr(self.network, "output_fmt", "NCHW") == "NHWC":  # Swin and other channels-last models
            features = features.permute(0, 3, 1, 2)
        return features.flatten(2).transpose(1, 2)


class PixelShuffleHead(Decoder):
    """MFM's prediction head: 1×1 conv to stride²·C channels + PixelShuffle(stride), on the encoder
    tokens reshaped to the feature grid (prefix tokens dropped), predicting the whole image
    B×C×H×W. With ``depth`` > 0 a transformer decoder runs first (the reference's optional ViT
    decoder: Linear to ``embed_dim``, learned absolute positions, blocks, LayerNorm)."""

    def __init__(self, encoder_dim: int, stride: int, out_chans: int = 3, num_prefix_tokens: int = 1,
                 depth: int = 0, embed_dim: int = 512, num_heads: int = 16, mlp_ratio: float = 4.0,
                 grid_size: int | tuple[int, int] = 14) -> None:
        super().__init__()
        self.stride, self.out_chans, self.num_prefix_tokens = stride, out_chans, num_prefix_tokens
        width = encoder_dim
        if depth > 0:
            self.grid_size = as_pair(grid_size, "decoder grid_size")
            self.embed = nn.Linear(encoder_dim, embed_dim)
            self.pos_embed = nn.Parameter(torch.zeros(1, num_prefix_tokens + self.grid_size[0] * self.grid_size[1], embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio)
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
            width = embed_dim
        self.depth = depth
        self.pred = nn.Sequential(nn.Conv2d(width, stride ** 2 * out_chans, kernel_size=1), nn.PixelShuffle(stride))

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        height, width = tokens.meta["image_size"]
        grid = (height // self.stride, width // self.stride)
        x = latents
        if self.depth > 0:
            positions = resample_grid_table(self.pos_embed, self.grid_size, grid, self.num_prefix_tokens)
            x = self.norm(self.blocks(self.embed(x) + positions.to(x.dtype)))
        x = x[:, self.num_prefix_tokens:]
        if x.shape[1] != grid[0] * grid[1]:
            raise ValueError(f"the encoder gave {x.shape[1]} tokens; an {height}×{width} image at stride "
                             f"{self.stride} needs {grid[0]}×{grid[1]}")
        x = x.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        return self.pred(x)
