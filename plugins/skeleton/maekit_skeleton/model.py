"""SkeletonMAE: tokens per joint per temporal segment, spatial-temporal masking, and the MAMP
conventions where the paper is silent (github.com/maoyunyao/MAMP, ``model_mae`` / ``model_mamp``).

Layout (MAMP's): a batch (N, C, T, V, M) becomes N·M body sequences, body-major (row n·M + m);
tokens are time-major (segment t, joint v) → row t·V + v, each holding its segment's frames ×
channels in (frame, channel) order — ``einsum("ntuvpc->ntvupc")`` with one joint per patch.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import torch
from torch import nn

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskedAutoencoder
from maekit.nn.base import Masker, NoiseSource, Patchifier, Target
from maekit.nn.decoder import MAEDecoder
from maekit.nn.encoder import TokenEncoder, make_blocks
from maekit.nn.masking import check_mask_ratio, draw_noise, num_visible
from maekit.ops import init_mae_weights, norm_pix
from maekit.structures import Mask, Tokens

__all__ = ["SkeletonPatchifier", "SkeletonEncoder", "SkeletonDecoder", "SpatioTemporalMasker", "JointMasker",
           "FrameMasker", "MotionAwareMasker", "MotionTarget", "SkeletonMAE", "skeleton_mae", "token_frames",
           "frame_tokens"]


def frame_tokens(frames: torch.Tensor, segment: int) -> torch.Tensor:
    """(S, T, V, C) body sequences → (S, T/segment · V, segment · C) tokens, MAMP's layout."""
    sequences, length, joints, channels = frames.shape
    x = frames.reshape(sequences, length // segment, segment, joints, channels)
    return x.permute(0, 1, 3, 2, 4).reshape(sequences, (length // segment) * joints, segment * channels)


def token_frames(values: torch.Tensor, grid: Sequence[int], segment: int) -> torch.Tensor:
    """Exact inverse of :func:`frame_tokens`: (S, N, segment · C) → (S, T, V, C)."""
    segments, joints = grid
    x = values.reshape(values.shape[0], segments, joints, segment, -1)
    return x.permute(0, 1, 3, 2, 4).reshape(values.shape[0], segments * segment, joints, -1)


class SkeletonPatchifier(Patchifier):
    """(N, C, T, V, M) skeleton batches → tokens of N·M body sequences, one per joint per
    ``segment`` frames (MAMP: 4), coords (segment index, joint index); meta records the grid, the
    segment and the body count."""

    def __init__(self, segment: int = 4, num_joints: int = 25, channels: int = 3, key: str = "inputs") -> None:
        super().__init__()
        if not isinstance(segment, int) or segment < 1:
            raise ValueError(f"segment must be a positive int, got {segment!r}")
        self.segment, self.num_joints, self.channels, self.key = segment, num_joints, channels, key

    def sequences(self, batch: Any) -> torch.Tensor:
        """The batch as (N·M, T, V, C) body sequences, after checking its shape."""
        x = batch[self.key] if isinstance(batch, Mapping) else batch
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected skeletons as (N, C, T, V, M) = (batch, xyz, frames, joints, bodies), got {shape}")
        _, channels, length, joints, _ = x.shape
        if channels != self.channels or joints != self.num_joints:
            raise ValueError(f"expected {self.channels} channels and {self.num_joints} joints, got a batch "
                             f"{tuple(x.shape)} (N, C, T, V, M)")
        if length % self.segment:
            raise ValueError(f"{length} frames is not a multiple of the segment length {self.segment}; "
                             f"resize clips (SkeletonAugment / SkeletonEvalTransform num_frames) to a multiple")
        return x.permute(0, 4, 2, 3, 1).reshape(-1, length, joints, channels)

    def forward(self, batch: Any) -> Tokens:
        x = batch[self.key] if isinstance(batch, Mapping) else batch
        frames = self.sequences(batch)
        grid = (frames.shape[1] // self.segment, self.num_joints)
        t, v = torch.meshgrid(torch.arange(grid[0], device=frames.device), torch.arange(grid[1], device=frames.device),
                              indexing="ij")
        coords = torch.stack([t, v], dim=-1).reshape(1, -1, 2).float().expand(frames.shape[0], -1, -1)
        meta = {"grid_size": grid, "segment": self.segment, "bodies": x.shape[-1]}
        return Tokens(frame_tokens(frames, self.segment), coords, meta)


class _SegmentJointPositions(nn.Module):
    """MAMP's separate learnable temporal (per segment) and joint position embeddings, summed."""

    def __init__(self, num_segments: int, num_joints: int, dim: int) -> None:
        super().__init__()
        self.temporal_pos_embed = nn.Parameter(torch.zeros(num_segments, dim))
        self.joint_pos_embed = nn.Parameter(torch.zeros(num_joints, dim))
        nn.init.trunc_normal_(self.temporal_pos_embed, std=0.02)
        nn.init.trunc_normal_(self.joint_pos_embed, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return {"temporal_pos_embed", "joint_pos_embed"}

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        segments, joints = coords[..., 0].long(), coords[..., 1].long()
        if int(segments.max()) >= len(self.temporal_pos_embed):
            raise ValueError(f"sequence has {int(segments.max()) + 1} segments; the model was built for "
                             f"{len(self.temporal_pos_embed)} (num_frames / segment)")
        return self.temporal_pos_embed[segments] + self.joint_pos_embed[joints]


class SkeletonEncoder(TokenEncoder):
    """MAMP's encoder: a linear embedding of each token's segment × xyz (the (4, 1) conv of
    ``SkeleEmbed`` as a matrix), temporal + joint position embeddings, no class token, pre-norm
    blocks (LayerNorm eps 1e-5, qkv bias), final LayerNorm."""

    num_prefix_tokens = 0

    def __init__(self, in_dim: int = 12, num_segments: int = 30, num_joints: int = 25, embed_dim: int = 256,
                 depth: int = 8, num_heads: int = 8, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = nn.Linear(in_dim, embed_dim)
        self.positions = _SegmentJointPositions(num_segments, num_joints, embed_dim)
        self.norm_pre = nn.Identity()
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, norm_eps=1e-5, drop_path_rate=drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)
        self.blocks.apply(init_mae_weights)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(values)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        return self.positions(tokens.coords)

    def prefix_tokens(self) -> torch.Tensor:
        return self.patch_embed.weight.new_zeros(1, 0, self.embed_dim)


class SkeletonDecoder(MAEDecoder):
    """MAMP's decoder: the MAE decoder (mask tokens un-shuffled into place) with its own learnable
    temporal + joint position embeddings, LayerNorm eps 1e-5, no prefix token."""

    def __init__(self, encoder_dim: int, out_dim: int, num_segments: int = 30, num_joints: int = 25,
                 embed_dim: int = 256, depth: int = 3, num_heads: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__(encoder_dim, out_dim, grid_size=1, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, num_prefix_tokens=0, norm_eps=1e-5)
        del self.pos_embed  # positions are the learnable tables below
        self.positions = _SegmentJointPositions(num_segments, num_joints, embed_dim)

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        return self.positions(tokens.coords)


# -- masking -------------------------------------------------------------------------------------
class SpatioTemporalMasker(Masker):
    """SkeletonMAE's spatial-temporal masking: remove V · joint_ratio whole joints (at every
    segment) and T' · frame_ratio whole segments (every joint), each rounded half up; with both
    ratios set, their union (0.6 and 0.75: 1 − 0.4 · 0.25 = 90 % of the tokens, MAMP's ratio). The joints and segments removed are those with the highest noise (columns
    ``[:V]`` pick joints, ``[V:]`` segments), so every sequence loses the same number of tokens."""

    def __init__(self, joint_ratio: float = 0.0, frame_ratio: float = 0.0) -> None:
        super().__init__()
        self.joint_ratio, self.frame_ratio = check_mask_ratio(joint_ratio), check_mask_ratio(frame_ratio)

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        """One number per joint, then one per segment, for each sequence."""
        segments, joints = tokens.meta["grid_size"]
        return (tokens.batch_size, joints + segments)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        segments, joints = tokens.meta["grid_size"]
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device, "(sequences, joints + segments)")
        masked_joints = self._highest(noise[:, :joints], int(joints * self.joint_ratio + 0.5))
        masked_segments = self._highest(noise[:, joints:], int(segments * self.frame_ratio + 0.5))
        masked = (masked_segments[:, :, None] | masked_joints[:, None, :]).reshape(tokens.batch_size, -1)
        removed = int(masked[0].sum())
        if removed >= masked.shape[1]:
            raise ValueError(f"joint_ratio {self.joint_ratio} and frame_ratio {self.frame_ratio} remove every token")
        # kept tokens first in token order, removed ones after: the shuffle Mask expects
        ids_shuffle = torch.argsort(masked.to(torch.uint8), dim=1, stable=True)
        return Mask.from_order(ids_shuffle, masked.shape[1] - removed)

    @staticmethod
    def _highest(noise: torch.Tensor, count: int) -> torch.Tensor:
        chosen = torch.zeros_like(noise, dtype=torch.bool)
        if count:
            chosen.scatter_(1, noise.topk(count, dim=1).indices, True)
        return chosen

    def extra_repr(self) -> str:
        return f"joint_ratio={self.joint_ratio}, frame_ratio={self.frame_ratio}"


class JointMasker(SpatioTemporalMasker):
    """Joint-level masking: whole joints across every segment (``mask_ratio`` of the joints)."""

    def __init__(self, mask_ratio: float = 0.4) -> None:
        super().__init__(joint_ratio=mask_ratio)


class FrameMasker(SpatioTemporalMasker):
    """Frame-level masking: whole segments across every joint (``mask_ratio`` of the segments)."""

    def __init__(self, mask_ratio: float = 0.8) -> None:
        super().__init__(frame_ratio=mask_ratio)


class MotionAwareMasker(Masker):
    """MAMP's motion-aware masking: a token's motion is the mean |difference| of its values from the
    same joint's previous segment (the first segment copies the second's); sampling probabilities
    softmax(motion / (max motion · tau)); Gumbel noise turns them into an order whose last
    ``mask_ratio`` share is removed — busy tokens are masked more often."""

    def __init__(self, mask_ratio: float = 0.9, tau: float = 0.8) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau!r}")
        self.tau = tau

    def motion(self, tokens: Tokens) -> torch.Tensor:
        segments, joints = tokens.meta["grid_size"]
        values = tokens.values.reshape(tokens.batch_size, segments, joints, -1).float()
        motion = torch.zeros_like(values)
        motion[:, 1:] = (values[:, 1:] - values[:, :-1]).abs()
        motion[:, 0] = motion[:, 1] if segments > 1 else 0
        return motion.mean(dim=-1).reshape(tokens.batch_size, -1)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        uniform = draw_noise(self.noise_shape(tokens), noise, tokens.values.device)
        motion = self.motion(tokens)
        motion = motion / (motion.amax(dim=-1, keepdim=True) * self.tau + 1e-10)
        probability = motion.softmax(dim=-1)
        score = probability.log() - torch.log(-torch.log(uniform + 1e-10) + 1e-10)  # Gumbel: low kept
        return Mask.from_order(torch.argsort(score, dim=1), num_visible(tokens.num_tokens, self.mask_ratio))

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, tau={self.tau}"


# -- targets ---------------------------------------------------------------------------------------
class MotionTarget(Target):
    """MAMP's target: motion x[t + stride] − x[t] per frame (the last ``stride`` frames zero),
    tokenised like the input; ``norm`` normalises each token as MAMP's ``norm_skes_loss`` (mean,
    unbiased variance, eps 1e-6)."""

    def __init__(self, stride: int = 1, norm: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        self.stride, self.norm, self.eps = stride, norm, eps

    def forward(self, tokens: Tokens, batch: Any = None) -> torch.Tensor:
        segment = tokens.meta["segment"]
        frames = token_frames(tokens.values, tokens.meta["grid_size"], segment)
        motion = torch.zeros_like(frames)
        motion[:, : -self.stride] = frames[:, self.stride:] - frames[:, : -self.stride]
        target = frame_tokens(motion, segment)
        if self.norm:
            target = norm_pix(target, self.eps)
        return target


# -- the method ------------------------------------------------------------------------------------
class SkeletonMAE(MaskedAutoencoder):
    """The masked autoencoder over body sequences. Two steps differ from core's pass: masking noise
    comes per *sample* (the trainer seeds it by sample), split into one row per body; and
    :meth:`encode` returns each sample's tokens of all its bodies, so mean pooling is MAMP's mean
    over tokens and bodies."""

    def make_mask(self, tokens: Tokens, noise: Any = None) -> Mask:
        bodies = tokens.meta["bodies"]
        if callable(noise):
            per_sample = noise

            def noise(shape: tuple[int, int], device: torch.device) -> torch.Tensor:
                return per_sample((shape[0] // bodies, shape[1] * bodies), device).reshape(shape)
        return self.masker(tokens, noise=noise)

    def encode(self, batch: Any, mask: Mask | None = None) -> torch.Tensor:
        tokens = self.tokenize(batch)
        latents = self.encoder(tokens if mask is None else tokens.take(mask.ids_keep))
        bodies = tokens.meta["bodies"]
        return latents.reshape(latents.shape[0] // bodies, bodies * latents.shape[1], latents.shape[2])

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        """Stick figures of body 1 over a few frames per sample: input | masked | reconstruction."""
        from maekit_skeleton.visualize import skeleton_panels

        return skeleton_panels(self, images, seed=seed)

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels` (each a strip of frames): the reconstruction keeps the
        visible joints (black) and draws the predicted removed ones in red."""
        return PanelTitles(columns=("input", "masked", "reconstruction (red) + visible"))


def skeleton_mae(num_frames: int = 120, segment: int = 4, num_joints: int = 25, channels: int = 3,
                 embed_dim: int = 256, depth: int = 8, num_heads: int = 8, decoder_embed_dim: int = 256,
                 decoder_depth: int = 3, decoder_num_heads: int = 8, mlp_ratio: float = 4.0,
                 masker: dict | None = None, target: str = "coordinates", norm_target: bool = False,
                 drop_path_rate: float = 0.0) -> SkeletonMAE:
    """SkeletonMAE with MAMP's sizes by default (T = 120 in segments of 4 → 30 × 25 tokens, encoder
    8 × 256 × 8 heads, decoder 3 × 256; 5 decoder blocks for NTU-120). ``masker``: any registered
    masker (default: joint + frame masking); ``target``: ``"coordinates"`` (optionally per-token
    normalised) or ``"motion"`` (MAMP)."""
    if num_frames % segment:
        raise ValueError(f"num_frames {num_frames} must be a multiple of segment {segment}")
    if target not in ("coordinates", "motion"):
        raise ValueError(f"target must be 'coordinates' or 'motion', got {target!r}")
    token_dim, segments = segment * channels, num_frames // segment
    if target == "motion":
        target_cfg = dict(type="skeleton_motion_target", norm=norm_target)
    else:
        target_cfg = dict(type="norm_pixels" if norm_target else "pixels")
    return SkeletonMAE(
        patchifier=SkeletonPatchifier(segment, num_joints, channels),
        masker=masker or dict(type="skeleton_spatiotemporal_masker", joint_ratio=0.6, frame_ratio=0.75),
        encoder=SkeletonEncoder(token_dim, segments, num_joints, embed_dim, depth, num_heads, mlp_ratio,
                                drop_path_rate),
        decoder=SkeletonDecoder(embed_dim, token_dim, segments, num_joints, decoder_embed_dim, decoder_depth,
                                decoder_num_heads, mlp_ratio),
        target=target_cfg,
        loss=dict(type="masked_mse"),
    )
