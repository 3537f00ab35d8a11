"""MeshMAE (Liang et al., ECCV 2022; liang3588/MeshMAE ``model/meshmae.py``).

    packed meshes B×P×64×27 ─► Tokens(values = 64 faces × 10 features, coords = (patch centre, valid))
    ─► mask int(ratio · fewest real patches in the batch) of each mesh's *real* patches
    ─► Linear(640) + LayerNorm tokens, MLP(centre) positions, class token, ViT blocks; padding
       patches are masked out of attention
    ─► decoder: mask tokens, its own positions, blocks; two heads per patch: the 45 distinct
       vertices as offsets from the patch centre, and the 64 × 10 face features
    ─► loss on removed patches: MSE(features) + 0.5 · Chamfer-L1(vertices)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskedAutoencoder
from maekit.nn.base import Decoder, Loss, Masker, NoiseSource, Patchifier, Target
from maekit.nn.encoder import TokenEncoder, make_blocks, run_blocks
from maekit.nn.masking import check_mask_ratio, draw_noise
from maekit.ops import fill_mask_tokens, init_mae_weights, masked_mean
from maekit.structures import Mask, Tokens
from maekit_mesh.features import CHANNELS, CORNERS, NORMALS, NUM_FEATURES, VALID, VERTEX, face_features
from maekit_mesh.remesh import FACES_PER_PATCH, VERTICES_PER_PATCH

__all__ = ["MeshPatchifier", "MeshPatchMasker", "MeshEncoder", "MeshDecoder", "MeshTargets", "MeshMAELoss",
           "MeshMAE", "mesh_mae", "packed_meshes", "chamfer_l1", "valid_of",
           "fill_padding_with_mean"]


def packed_meshes(batch: Any, key: str = "inputs") -> torch.Tensor:
    """The batch's packed meshes B×P×64×27 (see :mod:`maekit_mesh.features`), after a shape check."""
    x = batch[key] if isinstance(batch, Mapping) else batch
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[2:] != (FACES_PER_PATCH, CHANNELS):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected packed meshes B×P×{FACES_PER_PATCH}×{CHANNELS} (maekit_mesh datasets), got {shape}")
    return x


def valid_of(tokens: Tokens) -> torch.Tensor:
    """Which tokens are real patches (B×N bool): the last coordinate."""
    return tokens.coords[..., 3] > 0.5


def _padding_mask(valid: torch.Tensor, prefix: int) -> torch.Tensor:
    """An attention mask (B×1×1×(P+N), True = attend) that hides padding patches as keys."""
    keep = torch.cat([valid.new_ones(valid.shape[0], prefix), valid], dim=1)
    return keep[:, None, None, :]


class MeshPatchifier(Patchifier):
    """Patch tokens: each patch's 64 faces × 10 features (computed from the packed geometry,
    :func:`~maekit_mesh.features.face_features`) flattened face-major (index f·10 + c, the
    reference's ``Rearrange('b c h p -> b h (p c)')``); coords = (mean of its face centres, valid).
    Padding patches get zero values."""

    def forward(self, batch: Any) -> Tokens:
        x = packed_meshes(batch)
        valid = x[..., 0, VALID : VALID + 1]
        features = face_features(x[..., CORNERS], x[..., NORMALS]) * valid.unsqueeze(-1)
        corners = x[..., CORNERS]
        centres = (corners[..., 0:3] + corners[..., 3:6] + corners[..., 6:9]).mean(dim=2) / 3
        return Tokens(features.flatten(2), torch.cat([centres, valid], dim=-1), {"faces_per_patch": FACES_PER_PATCH})


class MeshPatchMasker(Masker):
    """Random masking over real patches only: every mesh of the batch loses ``int(ratio · fewest
    real patches in the batch)`` of its real patches (so batches keep one visible length); padding
    patches are never removed. (The reference draws the removed patches among the first
    ``fewest`` patches of every mesh; here any real patch may be removed.)"""

    def __init__(self, mask_ratio: float = 0.5) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        valid = valid_of(tokens)
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        fewest = int(valid.sum(dim=1).min())
        if fewest == 0:
            raise ValueError("a mesh in the batch has no patches")
        removed = int(self.mask_ratio * fewest)
        order = torch.argsort(torch.where(valid, noise, noise - 2.0), dim=1)  # padding first: kept
        return Mask.from_order(order, tokens.num_tokens - removed)

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}"


def _position_mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))


class MeshEncoder(TokenEncoder):
    """MeshMAE's encoder: Linear(64 · 10 → D) + LayerNorm per patch, MLP(3 → 128 → D, GELU) of the
    patch centre, a class token with its own learned position, timm blocks (qkv bias, LayerNorm
    eps 1e-5 as ``nn.LayerNorm``'s default), final LayerNorm; padding patches hidden from attention."""

    def __init__(self, in_dim: int = FACES_PER_PATCH * NUM_FEATURES, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = nn.Sequential(nn.Linear(in_dim, embed_dim), nn.LayerNorm(embed_dim))
        self.pos_mlp = _position_mlp(embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.norm_pre = nn.Identity()
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, norm_eps=1e-5, drop_path_rate=drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim)
        self.apply(init_mae_weights)
        nn.init.normal_(self.cls_token, std=0.02)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(values)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        return self.pos_mlp(tokens.coords[..., :3].to(self.cls_token.dtype))

    def prefix_tokens(self) -> torch.Tensor:
        return self.cls_token + self.cls_pos

    def attention_mask(self, tokens: Tokens) -> torch.Tensor:
        """Padding patches hidden from every block's attention."""
        return _padding_mask(valid_of(tokens), self.num_prefix_tokens)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token"}


class MeshDecoder(Decoder):
    """MeshMAE's decoder: Linear to the decoder width, mask tokens un-shuffled into place, MLP(centre)
    positions (the class token's learned), timm blocks with padding hidden, LayerNorm; heads
    ``to_vertices`` (45 × 3 offsets from the patch centre) and ``to_features`` (10 × 64, the
    reference's channel-major layout). Returns ``{"vertices": B×N×45×3 absolute, "features": B×N×640}``."""

    def __init__(self, encoder_dim: int = 768, embed_dim: int = 512, depth: int = 6, num_heads: int = 16,
                 mlp_ratio: float = 4.0, num_prefix_tokens: int = 1) -> None:
        super().__init__()
        self.num_prefix_tokens = num_prefix_tokens
        self.embed = nn.Linear(encoder_dim, embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_mlp = _position_mlp(embed_dim)
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, norm_eps=1e-5)
        self.norm = nn.LayerNorm(embed_dim)
        self.to_vertices = nn.Linear(embed_dim, VERTICES_PER_PATCH * 3)
        self.to_features = nn.Linear(embed_dim, FACES_PER_PATCH * NUM_FEATURES)
        self.apply(init_mae_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> dict[str, torch.Tensor]:
        x = self.embed(latents)
        prefix, visible = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
        x = fill_mask_tokens(visible, mask.ids_restore, self.mask_token)
        batch, length = x.shape[:2]
        centres = tokens.coords[..., :3].to(x.dtype)
        x = torch.cat([prefix + self.cls_pos, x + self.pos_mlp(centres)], dim=1)
        x = run_blocks(self.blocks, x, attn_mask=_padding_mask(valid_of(tokens), self.num_prefix_tokens))
        x = self.norm(x)[:, self.num_prefix_tokens:]
        offsets = self.to_vertices(x).reshape(batch, length, VERTICES_PER_PATCH, 3)
        # the absolute positions are added in float32: bf16 would round away ~1e-3 of the unit sphere
        vertices = offsets.float() + tokens.coords[..., :3].float().unsqueeze(2)
        return {"vertices": vertices, "features": self.to_features(x)}


class MeshTargets(Target):
    """The patch's 45 distinct vertices (B×N×45×3) and its 64 faces' features in the reference's
    channel-major order (feature c of face f at c · 64 + f), ``{"vertices", "features"}``."""

    def forward(self, tokens: Tokens, batch: Any = None) -> dict[str, torch.Tensor]:
        x = packed_meshes(batch)
        features = tokens.values.reshape(*tokens.values.shape[:2], FACES_PER_PATCH, NUM_FEATURES)
        return {"vertices": x[:, :, :VERTICES_PER_PATCH, VERTEX], "features": features.transpose(2, 3).flatten(2)}


def chamfer_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Point-cloud Chamfer-L1 of MeshMAE (the GRNet extension's ``ChamferDistanceL1``): Euclidean
    nearest distances both ways, each direction averaged, their mean — per cloud (a: M×K×3)."""
    distances = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")  # 45 × 45 per patch: small
    return (distances.amin(dim=2).mean(dim=1) + distances.amin(dim=1).mean(dim=1)) / 2


class MeshMAELoss(Loss):
    """On removed patches only: MSE of the face features (mean over their values) + ``weight`` ·
    Chamfer-L1 of the 45 vertices (mean over the patches); MeshMAE's weight 0.5."""

    def __init__(self, weight: float = 0.5) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, pred: dict, target: dict, mask: Mask) -> dict[str, torch.Tensor]:
        removed = mask.masked.bool()
        if not removed.any():
            raise ValueError("no patch was removed: mesh_mae needs a mask ratio that removes at least one patch")
        features = nn.functional.mse_loss(pred["features"][removed].float(), target["features"][removed].float())
        chamfer = chamfer_l1(pred["vertices"][removed].float(), target["vertices"][removed].float()).mean()
        return {"loss": features + self.weight * chamfer, "feature_mse": features, "chamfer_l1": chamfer}


def fill_padding_with_mean(features: torch.Tensor, valid: torch.Tensor, prefix: int) -> torch.Tensor:
    """Patch outputs (after ``prefix`` tokens) with each padding patch replaced by the mean of the
    mesh's real patches: any mean or max over the tokens then equals the same pool over the real
    patches only."""
    patches = features[:, prefix:]
    weights = valid.unsqueeze(-1).to(patches.dtype)
    mean = masked_mean(patches, weights, dim=1, keepdim=True, empty=0.0)
    return torch.cat([features[:, :prefix], torch.where(valid.unsqueeze(-1), patches, mean)], dim=1)


class MeshMAE(MaskedAutoencoder):
    """MeshMAE: core's pass with padding-aware components. ``encode`` (features for probes) returns
    padding patches as the mean of the real ones (:func:`fill_padding_with_mean`), so core's
    pooled probes see real patches only; and its own pictures."""

    picture_scale = 1

    def encode(self, batch: Any, mask: Mask | None = None) -> torch.Tensor:
        tokens = self.tokenize(batch)
        if mask is not None:
            tokens = tokens.take(mask.ids_keep)
        return fill_padding_with_mean(self.encoder(tokens), valid_of(tokens), self.encoder.num_prefix_tokens)

    @torch.no_grad()
    def panels(self, meshes: torch.Tensor, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        """Per mesh: coloured by patch | removed patches grey | predicted vertices of removed patches."""
        from maekit_mesh.visualize import mesh_panels

        return mesh_panels(self, meshes, seed=seed)

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`: the mesh, its removed patches grey, and the visible
        patches with the predicted vertices of the removed ones (red dots)."""
        return PanelTitles(columns=("input", "masked", "reconstruction (red vertices) + visible"))


def mesh_mae(embed_dim: int = 768, depth: int = 12, num_heads: int = 12, decoder_embed_dim: int = 512,
             decoder_depth: int = 6, decoder_num_heads: int = 16, mask_ratio: float = 0.5, weight: float = 0.5,
             drop_path_rate: float = 0.0) -> MeshMAE:
    """MeshMAE with the paper's sizes: encoder 12 × 768 × 12 heads, decoder 6 × 512 × 16 heads,
    mask ratio 0.5, loss MSE(features) + 0.5 · Chamfer-L1(vertices)."""
    return MeshMAE(
        patchifier=MeshPatchifier(),
        masker=MeshPatchMasker(mask_ratio),
        encoder=MeshEncoder(FACES_PER_PATCH * NUM_FEATURES, embed_dim, depth, num_heads, drop_path_rate=drop_path_rate),
        decoder=MeshDecoder(embed_dim, decoder_embed_dim, decoder_depth, decoder_num_heads),
        target=MeshTargets(),
        loss=MeshMAELoss(weight),
    )
