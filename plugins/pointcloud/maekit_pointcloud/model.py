"""MAE3D and Point-MAE as configurations of one pipeline over point patches.

    cloud B×N×3 ─► FPS centres + kNN groups ─► Tokens(values B×G×k·3, coords = centres B×G×3)
    ─► random / block mask over centres ─► patch embedding (mini-PointNet | EdgeConv) + MLP(centre)
       positions added before every block ─► transformer over visible patches
    ─► Point-MAE: decoder over all patches predicts each masked group's points (Chamfer-L2)
       MAE3D: decoder fills masked latents, max-pools a global code, folds it into centres and a
       completed cloud (0.1·CD(cloud, input) + CD(centres, FPS centres), squared, summed)

Both references count masked patches as ``int(G·ratio)`` (Point-MAE 38 of 64, MAE3D 22 of 32),
which :class:`PointRandomMasker` / :class:`PointBlockMasker` reproduce.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskedAutoencoder
from maekit.nn.attention import Attention
from maekit.nn.base import Decoder, Loss, Patchifier, Target
from maekit.nn.encoder import TokenEncoder, run_blocks
from maekit.nn.masking import BlockMasker, RandomMasker
from maekit.ops import fill_mask_tokens, init_trunc_normal_weights
from maekit.structures import Mask, Tokens
from maekit_pointcloud.geometry import chamfer_distance, farthest_point_sample, gather_points, knn

__all__ = ["PointGroupPatchifier", "PointRandomMasker", "PointBlockMasker", "MiniPointNet", "EdgeConvEmbedding",
           "PointBlock", "PointTransformerEncoder", "PointGroupDecoder", "FoldingDecoder", "PointGroupTarget",
           "CompletionTarget", "MaskedChamferLoss", "CompletionChamferLoss", "PointCloudMAE", "point_mae", "mae3d",
           "cloud_of"]


def cloud_of(batch: Any, key: str = "inputs") -> torch.Tensor:
    """The batch's clouds B×N×3, after checking their shape."""
    points = batch[key] if isinstance(batch, Mapping) else batch
    if not isinstance(points, torch.Tensor) or points.dim() != 3 or points.shape[-1] != 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"expected point clouds as B×N×3, got {shape}")
    return points


class PointGroupPatchifier(Patchifier):
    """``num_groups`` FPS centres, each with its ``group_size`` nearest points (the centre among
    them): values B×G×(k·3) in (point, xyz) order, coords = the centres. ``recentre`` subtracts
    each centre from its group (Point-MAE); MAE3D keeps absolute coordinates."""

    def __init__(self, num_groups: int = 64, group_size: int = 32, recentre: bool = True, key: str = "inputs") -> None:
        super().__init__()
        self.num_groups, self.group_size, self.recentre, self.key = num_groups, group_size, recentre, key

    def forward(self, batch: Any) -> Tokens:
        points = cloud_of(batch, self.key)
        if points.shape[1] < max(self.num_groups, self.group_size):
            raise ValueError(f"clouds of {points.shape[1]} points cannot give {self.num_groups} groups of "
                             f"{self.group_size} points; sample more points (transform num_points)")
        centres = gather_points(points, farthest_point_sample(points, self.num_groups))
        groups = gather_points(points, knn(centres, points, self.group_size))  # B×G×k×3, nearest first
        if self.recentre:
            groups = groups - centres.unsqueeze(2)
        meta = {"group_size": self.group_size, "recentred": self.recentre}
        return Tokens(groups.flatten(2), centres, meta)


def _masked_count_visible(masker: RandomMasker, num_tokens: int) -> int:
    return num_tokens - int(num_tokens * masker.mask_ratio)


class PointRandomMasker(RandomMasker):
    """Point-MAE's random masking ('rand'): ``int(G·ratio)`` patches removed per sample at random."""

    def visible_count(self, num_tokens: int) -> int:
        return _masked_count_visible(self, num_tokens)


class PointBlockMasker(BlockMasker):
    """MAE3D's block masking (and Point-MAE's 'block'): a random centre and its nearest centres,
    ``int(G·ratio)`` patches in all, the chosen one included; a new centre per sample (MAE3D draws
    one for the whole batch)."""

    def visible_count(self, num_tokens: int) -> int:
        return _masked_count_visible(self, num_tokens)


# -- patch embeddings --------------------------------------------------------------------------------
class MiniPointNet(nn.Module):
    """Point-MAE's group encoder: shared MLP 3→128→256 (BN, ReLU), max, concatenated with each
    point's feature (512), 512→512→``dim``, max: one token per group."""

    def __init__(self, dim: int = 384) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
                                        nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                         nn.Conv1d(512, dim, 1))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        """groups B×G×k×3 → B×G×dim."""
        batch, count, size, _ = groups.shape
        x = self.first_conv(groups.reshape(batch * count, size, 3).transpose(1, 2))  # (B·G)×256×k
        x = torch.cat([x.amax(dim=2, keepdim=True).expand(-1, -1, size), x], dim=1)
        return self.second_conv(x).amax(dim=2).reshape(batch, count, -1)


def _edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """DGCNN's ``get_graph_feature``: for each point its k nearest (in feature space, itself
    included), [neighbour − point, point] → B×2C×P×k."""
    points = x.transpose(1, 2)  # B×P×C
    neighbours = gather_points(points, knn(points, points, k))  # B×P×k×C
    centre = points.unsqueeze(2).expand_as(neighbours)
    return torch.cat([neighbours - centre, centre], dim=-1).permute(0, 3, 1, 2)


class EdgeConvEmbedding(nn.Module):
    """MAE3D's patch embedding (DGCNN): four EdgeConv layers (k = 20; 64, 64, 128, 256; BN,
    LeakyReLU 0.2; no conv bias) over every visible point of a sample at once (the graph spans
    patches, as the reference builds it), concatenated (512), a 1×1 conv to ``dim``, max-pooled
    within each patch."""

    def __init__(self, dim: int = 1024, k: int = 20) -> None:
        super().__init__()
        self.k = k
        widths = [(6, 64), (128, 64), (128, 128), (256, 256)]
        self.edge_convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))
            for c_in, c_out in widths)
        self.fuse = nn.Sequential(nn.Conv1d(512, dim, 1, bias=False), nn.BatchNorm1d(dim), nn.LeakyReLU(0.2))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        """groups B×G×k×3 → B×G×dim."""
        batch, count, size, _ = groups.shape
        x = groups.reshape(batch, count * size, 3).transpose(1, 2)  # B×3×P
        k = min(self.k, x.shape[2])
        layers = []
        for conv in self.edge_convs:
            x = conv(_edge_features(x, k)).amax(dim=-1)
            layers.append(x)
        x = self.fuse(torch.cat(layers, dim=1))  # B×dim×P
        return x.reshape(batch, -1, count, size).amax(dim=-1).transpose(1, 2)


# -- transformer -----------------------------------------------------------------------------------
class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PointBlock(nn.Module):
    """A pre-norm transformer block as both references write it (LayerNorm eps 1e-5, GELU MLP,
    drop-path), with the attention's inner width free."""

    def __init__(self, dim: int, num_heads: int, head_dim: int | None = None, mlp_dim: int | None = None,
                 qkv_bias: bool = False, norm_eps: float = 1e-5, drop_path: float = 0.0) -> None:
        super().__init__()
        from timm.layers import DropPath

        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, head_dim, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = _MLP(dim, mlp_dim or 4 * dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _blocks(dim: int, depth: int, num_heads: int, head_dim: int | None, mlp_dim: int | None, qkv_bias: bool,
            norm_eps: float, drop_path_rate: float) -> nn.ModuleList:
    rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
    return nn.ModuleList(PointBlock(dim, num_heads, head_dim, mlp_dim, qkv_bias, norm_eps, rate) for rate in rates)


def _position_mlp(dim: int, hidden: int, activation: str) -> nn.Sequential:
    act = {"gelu": nn.GELU, "relu": nn.ReLU}[activation]
    return nn.Sequential(nn.Linear(3, hidden), act(), nn.Linear(hidden, dim))


class PointTransformerEncoder(TokenEncoder):
    """Transformer over point patches: a patch embedding (``"pointnet"``: Point-MAE's mini-PointNet;
    ``"edgeconv"``: MAE3D's DGCNN), an MLP of the centres as positions added before every block,
    an optional class token with its own learned position (MAE3D's ``cls_token_encoder``, Point-MAE
    fine-tuning's ``cls_pos``) and an optional final LayerNorm (Point-MAE has one, MAE3D not)."""

    def __init__(self, embed_dim: int = 384, depth: int = 12, num_heads: int = 6, head_dim: int | None = None,
                 mlp_dim: int | None = None, embedding: str = "pointnet", edgeconv_k: int = 20,
                 pos_hidden: int = 128, pos_activation: str = "gelu", class_token: bool = False,
                 final_norm: bool = True, qkv_bias: bool = False, norm_eps: float = 1e-5,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if embedding not in ("pointnet", "edgeconv"):
            raise ValueError(f"embedding must be 'pointnet' or 'edgeconv', got {embedding!r}")
        self.embed_dim = embed_dim
        self.num_prefix_tokens = int(class_token)
        self.patch_embed = MiniPointNet(embed_dim) if embedding == "pointnet" else EdgeConvEmbedding(embed_dim, edgeconv_k)
        self.pos_mlp = _position_mlp(embed_dim, pos_hidden, pos_activation)
        if class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.cls_pos = nn.Parameter(torch.zeros(1, 1, embed_dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            nn.init.trunc_normal_(self.cls_pos, std=0.02)
        self.norm_pre = nn.Identity()
        self.blocks = _blocks(embed_dim, depth, num_heads, head_dim, mlp_dim, qkv_bias, norm_eps, drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if final_norm else nn.Identity()
        self.apply(init_trunc_normal_weights)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(values.reshape(values.shape[0], values.shape[1], -1, 3))

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        """Positions of prefix + patches (B×(P+K)×D): added before every block, not once."""
        positions = self.pos_mlp(tokens.coords.to(self.pos_mlp[0].weight.dtype))
        if self.num_prefix_tokens:
            positions = torch.cat([self.cls_pos.expand(positions.shape[0], -1, -1), positions], dim=1)
        return positions

    def prefix_tokens(self) -> torch.Tensor:
        if self.num_prefix_tokens:
            return self.cls_token
        return self.pos_mlp[0].weight.new_zeros(1, 0, self.embed_dim)

    def embed(self, tokens: Tokens) -> torch.Tensor:
        return self.embed_tokens(tokens.values)  # positions join at every block

    def block_positions(self, tokens: Tokens) -> torch.Tensor:
        """Both references add the positions before every block: ``x = block(x + pos)``."""
        return self.position_embedding(tokens)

    def no_weight_decay(self) -> set[str]:
        """The class token and its position (the references' pre-training skips names containing
        'token'; their fine-tuning recipes, like maekit's layer decay, every position)."""
        return {"cls_token", "cls_pos"} if self.num_prefix_tokens else set()


# -- decoders ----------------------------------------------------------------------------------------
class PointGroupDecoder(Decoder):
    """Point-MAE's decoder: the mask token for removed patches, centre positions (its own MLP) added
    before every block, LayerNorm, a linear map to each group's ``group_size`` × 3 coordinates.
    Point-MAE concatenates [visible, masked] and keeps the last outputs; attention does not see
    order, so predicting every patch in patch order gives the same values for the masked ones."""

    def __init__(self, encoder_dim: int = 384, embed_dim: int = 384, depth: int = 4, num_heads: int = 6,
                 group_size: int = 32, num_prefix_tokens: int = 0, mlp_dim: int | None = None, pos_hidden: int = 128,
                 qkv_bias: bool = False, norm_eps: float = 1e-5, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        self.num_prefix_tokens = num_prefix_tokens
        self.embed = nn.Linear(encoder_dim, embed_dim) if encoder_dim != embed_dim else nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_mlp = _position_mlp(embed_dim, pos_hidden, "gelu")
        self.blocks = _blocks(embed_dim, depth, num_heads, None, mlp_dim, qkv_bias, norm_eps, drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.pred = nn.Linear(embed_dim, 3 * group_size)
        self.apply(init_trunc_normal_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        x = fill_mask_tokens(self.embed(latents[:, self.num_prefix_tokens:]), mask.ids_restore, self.mask_token)
        positions = self.pos_mlp(tokens.coords.to(x.dtype))
        return self.pred(self.norm(run_blocks(self.blocks, x, positions)))


class FoldingDecoder(Decoder):
    """MAE3D's completion decoder: latents to the decoder width (no bias), the learned token for
    every masked patch, a class token with a learned position, centre positions before every block
    (no final norm); the patch outputs max-pooled into a global code; an MLP predicts the ``G``
    centres (output read as (3, G), the reference's layout) and a folding MLP maps [code, 2-D grid
    point in [−0.1, 0.1]², centre] to an offset from that centre: ``grid_side``² points per centre.
    Returns ``{"cloud": B×(G·grid_side²)×3, "centres": B×G×3}``."""

    def __init__(self, encoder_dim: int = 1024, embed_dim: int = 1024, depth: int = 6, num_heads: int = 8,
                 head_dim: int | None = 64, mlp_dim: int | None = 2048, num_groups: int = 32, grid_side: int = 8,
                 num_prefix_tokens: int = 1, center_hidden: int = 1024, folding_hidden: int = 512,
                 grid_extent: float = 0.1, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.num_prefix_tokens, self.num_groups = num_prefix_tokens, num_groups
        self.embed = nn.Linear(encoder_dim, embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.randn(1, 1, embed_dim))  # MAE3D's token_init: N(0, 1)
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.pos_mlp = _position_mlp(embed_dim, embed_dim, "relu")
        self.blocks = _blocks(embed_dim, depth, num_heads, head_dim, mlp_dim, False, norm_eps, 0.0)
        self.mlp_center = nn.Sequential(
            nn.Linear(embed_dim, center_hidden), nn.BatchNorm1d(center_hidden), nn.ReLU(),
            nn.Linear(center_hidden, center_hidden), nn.BatchNorm1d(center_hidden), nn.ReLU(),
            nn.Linear(center_hidden, 3 * num_groups))
        self.mlp_folding = nn.Sequential(
            nn.Conv1d(embed_dim + 2 + 3, folding_hidden, 1), nn.BatchNorm1d(folding_hidden), nn.ReLU(),
            nn.Conv1d(folding_hidden, folding_hidden, 1), nn.BatchNorm1d(folding_hidden), nn.ReLU(),
            nn.Conv1d(folding_hidden, 3, 1))
        side = torch.linspace(-grid_extent, grid_extent, grid_side)
        rows, cols = torch.meshgrid(side, side, indexing="xy")  # numpy's meshgrid, as the reference
        self.register_buffer("grid", torch.stack([rows, cols]).reshape(2, -1), persistent=False)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> dict[str, torch.Tensor]:
        x = fill_mask_tokens(self.embed(latents[:, self.num_prefix_tokens:]), mask.ids_restore, self.mask_token)
        batch = x.shape[0]
        positions = torch.cat([self.cls_pos.expand(batch, -1, -1), self.pos_mlp(tokens.coords.to(x.dtype))], dim=1)
        x = torch.cat([self.cls_token.expand(batch, -1, -1).to(x.dtype), x], dim=1)
        code = run_blocks(self.blocks, x, positions)[:, 1:].amax(dim=1)  # B×D
        centres = self.mlp_center(code).reshape(batch, 3, self.num_groups)  # (3, G) as the reference
        per_centre = self.grid.shape[1]
        centre_of_point = centres.repeat_interleave(per_centre, dim=2)  # B×3×(G·m)
        grid = self.grid.to(code.dtype).repeat(1, self.num_groups).expand(batch, -1, -1)
        folded = self.mlp_folding(torch.cat([code.unsqueeze(2).expand(-1, -1, grid.shape[2]), grid,
                                             centre_of_point], dim=1))
        # absolute positions in float32 (bf16 would round them to ~1e-3 of the unit sphere)
        cloud = folded.float() + centre_of_point.float()
        return {"cloud": cloud.transpose(1, 2), "centres": centres.float().transpose(1, 2)}


# -- targets and losses ------------------------------------------------------------------------------
class PointGroupTarget(Target):
    """Point-MAE's target: each group's points relative to its centre, B×G×(k·3)."""

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        if tokens.meta.get("recentred", True):
            return tokens.values
        size = tokens.meta["group_size"]
        groups = tokens.values.reshape(tokens.batch_size, tokens.num_tokens, size, 3) - tokens.coords.unsqueeze(2)
        return groups.flatten(2)


class CompletionTarget(Target):
    """MAE3D's target: the whole input cloud and the FPS centres ``{"cloud", "centres"}``."""

    def __init__(self, key: str = "inputs") -> None:
        super().__init__()
        self.key = key

    def forward(self, tokens: Tokens, batch: Any = None) -> dict[str, torch.Tensor]:
        return {"cloud": cloud_of(batch, self.key), "centres": tokens.coords}


class MaskedChamferLoss(Loss):
    """Point-MAE's loss: Chamfer distance between predicted and true points of each *masked* group
    (``ChamferDistanceL2``: squared distances, mean over points per direction, the two directions
    added, mean over the masked groups of the batch; ``variant="l1"``: ``ChamferDistanceL1``)."""

    def __init__(self, variant: str = "l2", weight: float = 1.0) -> None:
        super().__init__()
        self.variant, self.weight = variant, weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: Mask) -> dict[str, torch.Tensor]:
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        removed = mask.masked.bool()
        if not removed.any():  # nothing masked (ratio 0): every group
            removed = torch.ones_like(removed)
        predicted = pred[removed].float().reshape(-1, pred.shape[-1] // 3, 3)
        true = target[removed].float().reshape(-1, pred.shape[-1] // 3, 3)
        value = chamfer_distance(predicted, true, self.variant, "mean", halve=self.variant == "l1")
        return {"loss": self.weight * value, f"chamfer_{self.variant}": value}


class CompletionChamferLoss(Loss):
    """MAE3D's loss: ``cloud_weight`` · CD(completed cloud, input) + CD(predicted, FPS centres), each
    with squared distances summed over points in both directions, then summed over the batch
    (``batch_reduction="mean"`` averages instead; Adam barely sees the difference)."""

    def __init__(self, cloud_weight: float = 0.1, batch_reduction: str = "sum") -> None:
        super().__init__()
        if batch_reduction not in ("sum", "mean"):
            raise ValueError(f"batch_reduction must be 'sum' or 'mean', got {batch_reduction!r}")
        self.cloud_weight, self.batch_reduction = cloud_weight, batch_reduction

    def forward(self, pred: dict, target: dict, mask: Mask) -> dict[str, torch.Tensor]:
        def chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            per_cloud = chamfer_distance(a.float(), b.float(), "l2", "sum", batch_reduction=None)
            return per_cloud.sum() if self.batch_reduction == "sum" else per_cloud.mean()

        cloud = chamfer(pred["cloud"], target["cloud"])
        centres = chamfer(pred["centres"], target["centres"])
        return {"loss": self.cloud_weight * cloud + centres, "chamfer_cloud": cloud, "chamfer_centres": centres}


# -- the method --------------------------------------------------------------------------------------
class PointCloudMAE(MaskedAutoencoder):
    """The masked autoencoder over point patches; only its pictures differ from core's pass."""

    picture_scale = 1  # rendered at full size, not upscaled pixels

    @torch.no_grad()
    def panels(self, clouds: torch.Tensor, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        """Per cloud: input | visible patches | completed (visible + predicted masked points)."""
        from maekit_pointcloud.visualize import point_cloud_panels

        return point_cloud_panels(self, clouds, seed=seed)

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`: the reconstruction is the visible points (black) with
        the predicted masked groups, or MAE3D's completed cloud, in red."""
        return PanelTitles(columns=("input", "masked", "reconstruction (red) + visible"))


def point_mae(num_points: int = 1024, num_groups: int = 64, group_size: int = 32, mask_ratio: float = 0.6,
              mask_type: str = "random", embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
              decoder_depth: int = 4, decoder_num_heads: int = 6, drop_path_rate: float = 0.1,
              loss: str = "l2") -> PointCloudMAE:
    """Point-MAE (Pang et al., ECCV 2022): 64 re-centred groups of 32 points, random masking 0.6,
    mini-PointNet tokens, 12 × 384 encoder (6 heads, no qkv bias), 4-block decoder, Chamfer-L2 of
    the masked groups. ``num_points`` documents the input size the config feeds."""
    masker = PointRandomMasker(mask_ratio) if mask_type == "random" else _block(mask_type, mask_ratio)
    return PointCloudMAE(
        patchifier=PointGroupPatchifier(num_groups, group_size, recentre=True),
        masker=masker,
        encoder=PointTransformerEncoder(embed_dim, depth, num_heads, embedding="pointnet",
                                        drop_path_rate=drop_path_rate),
        decoder=PointGroupDecoder(embed_dim, embed_dim, decoder_depth, decoder_num_heads, group_size,
                                  drop_path_rate=drop_path_rate),
        target=PointGroupTarget(),
        loss=MaskedChamferLoss(loss),
    )


def _block(mask_type: str, mask_ratio: float) -> PointBlockMasker:
    if mask_type != "block":
        raise ValueError(f"mask_type must be 'random' or 'block', got {mask_type!r}")
    return PointBlockMasker(mask_ratio)


def mae3d(num_points: int = 2048, num_groups: int = 32, group_size: int = 64, mask_ratio: float = 0.7,
          mask_type: str = "block", embed_dim: int = 1024, depth: int = 6, num_heads: int = 8, head_dim: int = 64,
          mlp_dim: int = 2048, decoder_embed_dim: int = 1024, decoder_depth: int = 6, decoder_num_heads: int = 8,
          edgeconv_k: int = 20, cloud_weight: float = 0.1, drop_path_rate: float = 0.0) -> PointCloudMAE:
    """MAE3D (Jiang et al.): 32 patches of 64 points (absolute coordinates), block masking 0.7,
    EdgeConv tokens, 6 × 1024 encoder and decoder (8 heads of 64, MLP 2048, class tokens),
    completion by folding; ``group_size`` must be a square (the folding grid)."""
    side = int(round(group_size ** 0.5))
    if side * side != group_size:
        raise ValueError(f"MAE3D's folding grid needs a square group_size (64 = 8×8), got {group_size}")
    masker = _block(mask_type, mask_ratio) if mask_type == "block" else PointRandomMasker(mask_ratio)
    return PointCloudMAE(
        patchifier=PointGroupPatchifier(num_groups, group_size, recentre=False),
        masker=masker,
        encoder=PointTransformerEncoder(embed_dim, depth, num_heads, head_dim, mlp_dim, embedding="edgeconv",
                                        edgeconv_k=edgeconv_k, pos_hidden=embed_dim, pos_activation="relu",
                                        class_token=True, final_norm=False, drop_path_rate=drop_path_rate),
        decoder=FoldingDecoder(embed_dim, decoder_embed_dim, decoder_depth, decoder_num_heads, head_dim, mlp_dim,
                               num_groups, side),
        target=CompletionTarget(),
        loss=CompletionChamferLoss(cloud_weight),
    )
