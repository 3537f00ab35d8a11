"""MVD (Wang et al., 2023): masked video distillation from a frozen image teacher and a frozen video
teacher (ruiwang2021/mvd: modeling_student.py, modeling_teacher.py, modeling_video_teacher.py,
engine_for_pretraining.py).

- The student is VideoMAE's encoder with MVD's space-time table (temporal D/4 | MAE 2-D 3D/4).
  Tube masking at 0.9.
- Two decoders, one per teacher. Each is as wide as the encoder with its heads, depth 2, its own
  mask token and the space-time table at its width. Each predicts its teacher's features;
  the loss reads the removed cubes.
- Targets: each teacher's last block output before its final LayerNorm, unnormalised.
  - The video teacher (a VideoMAE encoder) sees the whole clip.
  - The image teacher (an image MAE ViT, class token dropped) sees the first frame of every
    tubelet: frames 0, 2, ..., 14. Its patch (t, row, col) is the target of cube (t, row, col).
- Loss: SmoothL1 (β 1) for each, weighted 1:1.

Teachers load strictly from files (safetensors or weights-only torch files; no pickled code).
Layouts: the image MAE's official ``mae_pretrain_vit_*.pth`` and the official VideoMAE
pre-training checkpoints, or this toolkit's own ``mae`` / ``videomae`` runs.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from maekit.nn.base import Decoder
from maekit.nn.encoder import make_blocks
from maekit.nn.losses import MaskedSmoothL1Loss, NamedLosses
from maekit.nn.targets import FeatureTarget, NamedTargets, normalize_features
from maekit.nn.teachers import TEACHER_LAYOUTS, Teacher, frozen_teacher, image_mae_teacher
from maekit.ops import init_mae_weights
from maekit.structures import Mask, Tokens
from maekit_video.model import SpaceTimePositions, VideoMAE, VideoMAEDecoder, _encoder_cfg, _video_encoder

__all__ = ["FrameFeatureTarget", "MVDDecoder", "MVDDecoders", "mvd", "build_image_teacher", "build_video_teacher"]


class FrameFeatureTarget(FeatureTarget):
    """An image teacher's features of the first frame of every tubelet, one row per cube in token
    order: the cube's values start with that frame's (p, q, c) patch (cube layout τ-major), which
    the image ViT embeds as it would the frame's own patch."""

    def forward(self, tokens: Tokens, batch: Any = None, mask: Mask | None = None) -> torch.Tensor:
        t, h, w = tokens.meta["grid_size"]
        per_frame = tokens.values.shape[-1] // int(tokens.meta["tubelet_size"])
        batch_size = tokens.batch_size
        frames = Tokens(tokens.values[..., :per_frame].reshape(batch_size * t, h * w, per_frame),
                        tokens.coords[..., 1:].reshape(batch_size * t, h * w, 2), {"grid_size": (h, w)})
        features = self.teacher.features(frames, self.tap)[:, self.teacher.num_prefix_tokens:]
        return normalize_features(features.reshape(batch_size, t * h * w, -1), self.norm)


class MVDDecoder(VideoMAEDecoder):
    """One of MVD's feature decoders: Linear (with bias) to the decoder width, a mask token
    (truncated normal ±0.02) for every removed cube, the space-time table at the decoder width
    added to every token, blocks with q/v biases and the student's drop path (0 … rate over the
    depth, as the reference passes ``drop_path_rate`` to its decoders), LayerNorm, Linear to the
    teacher's width (xavier-uniform Linear, zero bias, as ``PretrainVisionTransformerDecoder``)."""

    def __init__(self, encoder_dim: int, out_dim: int, grid: tuple[int, int, int], embed_dim: int, depth: int = 2,
                 num_heads: int = 12, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> None:
        super().__init__(encoder_dim, out_dim, num_positions=1, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                         mlp_ratio=mlp_ratio)
        self.embed = nn.Linear(encoder_dim, embed_dim)
        init_mae_weights(self.embed)
        if drop_path_rate:
            self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, 1e-6, drop_path_rate, qkv_bias="qv")
            self.blocks.apply(init_mae_weights)
        self.positions = SpaceTimePositions(embed_dim, grid)  # type: ignore[assignment]


class MVDDecoders(Decoder):
    """The image-target and video-target decoders: ``{"image": ..., "video": ...}``."""

    def __init__(self, encoder_dim: int, image_dim: int, video_dim: int, grid: tuple[int, int, int],
                 depth: int = 2, num_heads: int = 12, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.image = MVDDecoder(encoder_dim, image_dim, grid, encoder_dim, depth, num_heads, drop_path_rate=drop_path_rate)
        self.video = MVDDecoder(encoder_dim, video_dim, grid, encoder_dim, depth, num_heads, drop_path_rate=drop_path_rate)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> dict[str, torch.Tensor]:
        return {"image": self.image(latents, mask, tokens), "video": self.video(latents, mask, tokens)}


def _checkpoint_of(spec: dict[str, Any], which: str) -> tuple[str, str]:
    if not spec.get("checkpoint"):
        raise ValueError(f"mvd {which}_teacher needs checkpoint=<file> (a frozen teacher distils nothing untrained)")
    layout = spec.get("layout", "official")
    if layout not in TEACHER_LAYOUTS:
        raise ValueError(f"mvd {which}_teacher layout must be one of {', '.join(TEACHER_LAYOUTS)}, got {layout!r}")
    return str(spec["checkpoint"]), layout


def build_image_teacher(spec: dict[str, Any], img_size: int, patch_size: int, in_chans: int) -> Teacher:
    """The frozen image MAE: ``dict(checkpoint=..., layout="official"|"maekit", size=... or
    encoder_name=..., encoder=dict(...))`` (core's :func:`~maekit.nn.teachers.image_mae_teacher`);
    its patch must be the student's spatial patch."""
    return image_mae_teacher(spec, img_size, patch_size, in_chans, "mvd image_teacher")


def build_video_teacher(spec: dict[str, Any], num_frames: int, img_size: int, patch_size: int, tubelet_size: int,
                  in_chans: int) -> Teacher:
    """The frozen VideoMAE encoder: ``dict(checkpoint=..., layout="official"|"maekit", size=... or
    encoder=dict(embed_dim=..., depth=..., num_heads=...))``; its cube must be the student's."""
    from maekit_video.interop import convert_videomae_checkpoint

    unknown = sorted(set(spec) - {"checkpoint", "layout", "size", "encoder"})
    if unknown:
        raise ValueError(f"mvd video_teacher: unknown key {unknown[0]!r} (expected checkpoint, layout, size, encoder)")
    checkpoint, layout = _checkpoint_of(spec, "video")
    cfg = _encoder_cfg(spec.get("size", "base"), spec.get("encoder"), "mvd video_teacher")
    module = dict(type="video_vit_encoder", num_frames=num_frames, img_size=img_size, patch_size=patch_size,
                  tubelet_size=tubelet_size, in_chans=in_chans, **cfg)

    def encoder_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if layout == "official":  # VideoMAE's pre-training file: encoder.*, decoder.*, encoder_to_decoder, mask_token
            state, _ = convert_videomae_checkpoint(state, "pretrain")
        return {key[len("encoder."):]: value for key, value in state.items() if key.startswith("encoder.")}

    return frozen_teacher(module, checkpoint, convert=encoder_part, prefixes=("module.", "model."))


def mvd(image_teacher: dict[str, Any], video_teacher: dict[str, Any], size: str | None = "base",
        num_frames: int = 16, img_size: int = 224, patch_size: int = 16, tubelet_size: int = 2, in_chans: int = 3,
        mask_ratio: float = 0.9, encoder: dict[str, Any] | None = None, decoder_depth: int = 2,
        image_weight: float = 1.0, video_weight: float = 1.0, drop_path_rate: float = 0.0) -> VideoMAE:
    """MVD (see the module docstring). ``image_teacher`` / ``video_teacher``: where the frozen
    teachers' weights are and their sizes (e.g. ``dict(size="base", checkpoint="mae_pretrain_vit_base.pth")``,
    ``dict(size="base", checkpoint="videomae_k400_pretrain.pth")``, layout "official" by default)."""
    enc = _video_encoder(size, encoder, "mvd", num_frames, img_size, patch_size, tubelet_size, in_chans,
                         drop_path_rate, positions="spacetime")
    images = build_image_teacher(dict(image_teacher), img_size, patch_size, in_chans)
    videos = build_video_teacher(dict(video_teacher), num_frames, img_size, patch_size, tubelet_size, in_chans)
    heads = enc.blocks[0].attn.num_heads
    image_dim, video_dim = int(images.module.embed_dim), int(videos.module.embed_dim)
    return VideoMAE(
        patchifier=dict(type="cube_patches", patch_size=patch_size, tubelet_size=tubelet_size, in_chans=in_chans),
        masker=dict(type="tube_mask", mask_ratio=mask_ratio),
        encoder=enc,
        decoder=MVDDecoders(enc.embed_dim, image_dim, video_dim, enc.grid_size, decoder_depth, heads, drop_path_rate),
        target=NamedTargets({"image": FrameFeatureTarget(images, tap=-1), "video": FeatureTarget(videos, tap=-1)}),
        loss=NamedLosses({"image": MaskedSmoothL1Loss(name="image_feature_loss"),
                          "video": MaskedSmoothL1Loss(name="video_feature_loss")},
                         weights={"image": image_weight, "video": video_weight}))

