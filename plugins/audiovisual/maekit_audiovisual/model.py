"""Audiovisual MAE (Georgescu et al., ICCV 2023; scenic ``projects/av_mae``, JAX) and MAViL
(Huang et al., NeurIPS 2023; no code released): masked autoencoding of a clip's video and audio.

A batch holds the video clips under ``"inputs"`` (B, 3, T, H, W) and the log-mel spectrograms under
``"audio"`` (B, 1, frames, bins). Each modality is cut by core's patchifiers (video: 2×16×16 cubes;
audio: 16×16 patches, time-major), embedded by its own linear layer with the fixed 1-D sinusoid
table over its own flat token order (added before masking, as the reference), and masked at its own
ratio (audio 0.7, video 0.9; ``int(ratio·N)`` removed, as the reference's ``int``). The encoder
fuses the visible tokens as ``fusion`` says (:class:`AudioVisualEncoder`); the decoder rebuilds
each modality (:class:`AudioVisualDecoder`). Modalities are concatenated video first, audio second
(the reference's modality dict is ordered ``rgb``, ``spectrogram``).

One AV-MAE step, top to bottom (:meth:`AudioVisualMAE.run_steps`): patchify both → per-modality
masks → raw-patch targets → encode the visible tokens (fused) → decode each modality (or inpaint
it from the other) → core's ``NamedLosses``: 0.5·audio + 0.5·video, each a masked MSE (squared
error averaged over the patch's values, then over the removed tokens: the reference's sum over
features divided by the masked count and by the feature size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from maekit.nn.base import NoiseSource
from maekit.nn.encoder import make_blocks
from maekit.nn.losses import NamedLosses
from maekit.nn.masking import RandomMasker
from maekit.nn.patchify import CubePatchifier, ImagePatchifier
from maekit.nn.pos_embed import sinusoid_table
from maekit.nn.targets import normalize_features
from maekit.nn.teachers import Teacher
from maekit.ops import init_mae_weights
from maekit.structures import ForwardPass, Mask, Tokens

__all__ = ["MODALITIES", "FUSIONS", "DECODER_STRATEGIES", "flat_index", "StreamEmbedding", "AudioVisualEncoder",
           "AudioVisualDecoder", "FlatSinusoid", "AudioVisualMAE", "MAViL", "av_mae", "mavil", "Encoded"]

#: the modalities, in the order they are concatenated (the reference's: rgb before spectrogram)
MODALITIES = ("video", "audio")
#: encoder fusion: "early" (scenic ``concat_and_encode``: every block joint), "mid"
#: (``separate_encoders_and_concat``: depth − joint_depth blocks per modality, then joint_depth
#: joint blocks; the release uses 2 of 24), "late" (``separate_encoders``: no interaction in the
#: encoder), "shared" (``same_encoder``: one stack of blocks run on each modality alone)
FUSIONS = ("early", "mid", "late", "shared")
#: decoder: "shared" (``same_decoder``, one stack run per modality: the release), "separate" (one
#: stack per modality), "joint" (``concat_and_decode``: both modalities' tokens together)
DECODER_STRATEGIES = ("shared", "separate", "joint")


def flat_index(tokens: Tokens) -> torch.Tensor:
    """Each token's index in its modality's flat, row-major grid order (B×N long): t·h·w + row·w + col
    for cubes, row·w + col for spectrogram patches (time-major)."""
    grid = tuple(int(g) for g in tokens.meta["grid_size"])
    strides = [math.prod(grid[axis + 1:]) for axis in range(len(grid))]
    coords = tokens.coords.long()
    return sum(coords[..., axis] * stride for axis, stride in enumerate(strides))


class FlatSinusoid(nn.Module):
    """The fixed 1-D sinusoid table (interleaved sin/cos: scenic's ``Add1DPositionEmbedding``, the
    same numbers as core's :func:`~maekit.nn.pos_embed.sinusoid_table`) looked up by each token's
    :func:`flat_index`; rebuilt for a longer grid, not stored in state dicts (fixed)."""

    def __init__(self, dim: int, num_positions: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("table", sinusoid_table(num_positions, dim)[0], persistent=False)

    def rows(self, count: int) -> torch.Tensor:
        """The first ``count`` rows (count × dim)."""
        return self.table[:count] if count <= self.table.shape[0] else sinusoid_table(count, self.dim)[0].to(self.table.device)

    def forward(self, tokens: Tokens) -> torch.Tensor:
        return self.rows(math.prod(int(g) for g in tokens.meta["grid_size"]))[flat_index(tokens)]


class StreamEmbedding(nn.Module):
    """One modality's tokeniser: a linear layer over the patch values (the reference's convolution
    with kernel = stride = the patch, as a matrix) plus the fixed table (:class:`FlatSinusoid`)."""

    def __init__(self, in_dim: int, dim: int, num_positions: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.positions = FlatSinusoid(dim, num_positions)

    def forward(self, tokens: Tokens) -> torch.Tensor:
        if tokens.values.shape[-1] != self.proj.in_features:
            raise ValueError(f"expected tokens of {self.proj.in_features} values, got {tokens.values.shape[-1]}")
        x = self.proj(tokens.values)
        return x + self.positions(tokens).to(x.dtype)


@dataclass
class Encoded:
    """What :class:`AudioVisualEncoder` gives per modality: ``unimodal`` — the tokens after the
    modality's own blocks and norm, before any joint block (for "early" fusion, which has none, the
    modality encoded alone when asked for, see :meth:`AudioVisualEncoder.forward`); ``fused`` — the
    encoder's output (after the joint blocks)."""

    unimodal: dict[str, torch.Tensor]
    fused: dict[str, torch.Tensor]


class AudioVisualEncoder(nn.Module):
    """The fused ViT encoder over the visible tokens of both modalities (``fusion``: :data:`FUSIONS`).

    Parameters: ``embed.<modality>`` (:class:`StreamEmbedding`), ``blocks.<modality>`` and
    ``norm.<modality>`` (per-modality stacks; "shared" has one stack ``blocks.shared`` and norm
    ``norm.shared``), ``joint_blocks`` and ``joint_norm`` ("early" and "mid"). Every stack ends with
    its own LayerNorm (eps 1e-6), as the reference's encoders each normalise their output. Blocks
    are timm's with a fused qkv bias (Flax's Dense default); init as MAE (xavier-uniform Linear)."""

    def __init__(self, patch_dims: Mapping[str, int], num_positions: Mapping[str, int], embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, fusion: str = "mid",
                 joint_depth: int = 2, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if fusion == "mid" and not 0 < joint_depth < depth:
            raise ValueError(f"mid fusion needs 0 < joint_depth < depth, got joint_depth={joint_depth}, depth={depth}")
        self.fusion, self.embed_dim = fusion, embed_dim
        self.embed = nn.ModuleDict({m: StreamEmbedding(patch_dims[m], embed_dim, num_positions[m]) for m in MODALITIES})
        joint = {"early": depth, "mid": joint_depth}.get(fusion, 0)
        own = depth - joint
        stacks = ["shared"] if fusion == "shared" else list(MODALITIES) if own else []

        def stack(count: int) -> nn.Sequential:
            return make_blocks(embed_dim, count, num_heads, mlp_ratio, 1e-6, drop_path_rate)

        self.blocks = nn.ModuleDict({name: stack(own) for name in stacks})
        self.norm = nn.ModuleDict({name: nn.LayerNorm(embed_dim, eps=1e-6) for name in stacks})
        self.joint_blocks = stack(joint) if joint else None
        self.joint_norm = nn.LayerNorm(embed_dim, eps=1e-6) if joint else None
        self.apply(init_mae_weights)

    def own_stack(self, modality: str) -> str | None:
        """The name of the stack that encodes ``modality`` alone (None for early fusion)."""
        if self.fusion == "shared":
            return "shared"
        return modality if modality in self.blocks else None

    def joint(self, parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The joint blocks over the concatenated parts, normalised, split back."""
        assert self.joint_blocks is not None and self.joint_norm is not None
        x = self.joint_norm(self.joint_blocks(torch.cat(list(parts), dim=1)))
        return list(x.split([part.shape[1] for part in parts], dim=1))

    def forward(self, visible: Mapping[str, Tokens], unimodal: bool = False) -> Encoded:
        """Encode the (visible) tokens of the modalities given (one or both): a modality given alone
        goes through the joint blocks alone — what the model knows of it without the other.
        ``unimodal``: early fusion (no stack of its own) also encodes each modality alone through
        the joint blocks for :attr:`Encoded.unimodal` (extra passes: only when a loss reads them);
        otherwise its ``unimodal`` is the embeddings."""
        present = [m for m in MODALITIES if m in visible]
        if not present:
            raise ValueError("the audio-visual encoder needs the tokens of video, audio or both")
        x = {m: self.embed[m](visible[m]) for m in present}
        own = {}
        for m in present:
            stack = self.own_stack(m)
            own[m] = self.norm[stack](self.blocks[stack](x[m])) if stack is not None else x[m]
        if self.joint_blocks is None:
            return Encoded(own, dict(own))
        fused = dict(zip(present, self.joint([own[m] for m in present])))
        if self.fusion == "early" and unimodal:  # no stack of its own: each modality through the joint blocks alone
            return Encoded(fused if len(present) == 1 else {m: self.joint([x[m]])[0] for m in present}, fused)
        return Encoded(own, fused)


class AudioVisualDecoder(nn.Module):
    """The reference's decoder: per modality a Linear to the decoder width (xavier, bias 0:
    ``decoder_projection_<m>``), a zero-initialised mask token per modality placed at the removed
    tokens, the 1-D sinusoid table at the decoder width added after un-shuffling; blocks as
    ``strategy`` says (:data:`DECODER_STRATEGIES`), each stack ending with a LayerNorm; per
    modality a zero-initialised Linear to the patch values (``output_projection_<m>``). Predicts
    every token of each modality, in token order (the loss reads the removed ones)."""

    def __init__(self, encoder_dim: int, patch_dims: Mapping[str, int], num_positions: Mapping[str, int],
                 embed_dim: int = 512, depth: int = 4, num_heads: int = 8, mlp_ratio: float = 4.0,
                 strategy: str = "shared", out_dims: Mapping[str, int] | None = None) -> None:
        super().__init__()
        if strategy not in DECODER_STRATEGIES:
            raise ValueError(f"decoder strategy must be one of {', '.join(DECODER_STRATEGIES)}, got {strategy!r}")
        self.strategy, self.embed_dim = strategy, embed_dim
        self.proj = nn.ModuleDict({m: nn.Linear(encoder_dim, embed_dim) for m in MODALITIES})
        self.mask_token = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, embed_dim)) for m in MODALITIES})
        self.positions = nn.ModuleDict({m: FlatSinusoid(embed_dim, num_positions[m]) for m in MODALITIES})
        stacks = list(MODALITIES) if strategy == "separate" else [strategy]
        self.blocks = nn.ModuleDict({s: make_blocks(embed_dim, depth, num_heads, mlp_ratio, 1e-6) for s in stacks})
        self.norm = nn.ModuleDict({s: nn.LayerNorm(embed_dim, eps=1e-6) for s in stacks})
        out_dims = dict(out_dims or patch_dims)
        self.pred = nn.ModuleDict({m: nn.Linear(embed_dim, out_dims[m]) for m in MODALITIES})
        self.apply(init_mae_weights)
        for head in self.pred.values():  # the reference's zero-initialised output projection
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def no_weight_decay(self) -> set[str]:
        """The mask tokens take no weight decay (core's rule for every decoder's mask token)."""
        return {f"mask_token.{m}" for m in MODALITIES}

    def stack_of(self, modality: str) -> str:
        return modality if self.strategy == "separate" else self.strategy

    def run(self, stack: str, x: torch.Tensor) -> torch.Tensor:
        return self.norm[stack](self.blocks[stack](x))

    def sequence(self, modality: str, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        """The decoder input of one modality: projected visible tokens and mask tokens, un-shuffled
        into token order, plus the table."""
        x = self.proj[modality](latents)
        batch, length = tokens.batch_size, tokens.num_tokens
        full = self.mask_token[modality].to(x.dtype).expand(batch, length, -1).clone()
        full = full.scatter(1, mask.ids_keep[..., None].expand(-1, -1, x.shape[-1]), x)
        return full + self.positions[modality](tokens).to(x.dtype)

    def forward(self, latents: Mapping[str, torch.Tensor], masks: Mapping[str, Mask],
                tokens: Mapping[str, Tokens]) -> dict[str, torch.Tensor]:
        x = {m: self.sequence(m, latents[m], masks[m], tokens[m]) for m in MODALITIES}
        if self.strategy == "joint":
            out = self.run("joint", torch.cat([x[m] for m in MODALITIES], dim=1))
            decoded = dict(zip(MODALITIES, out.split([x[m].shape[1] for m in MODALITIES], dim=1)))
        else:
            decoded = {m: self.run(self.stack_of(m), x[m]) for m in MODALITIES}
        return {m: self.pred[m](decoded[m]) for m in MODALITIES}

    def inpaint(self, modality: str, other_latents: torch.Tensor, other: str, length: int,
                tokens: Tokens) -> torch.Tensor:
        """The reference's cross-modal inpainting of ``modality`` (``use_inpainting``): slots 0..K−1
        hold the *other* modality's K visible tokens (its own projection), slots K..N−1 this
        modality's mask token; the table's rows 0..N−1 are added in slot order; the decoder runs
        alone on this modality. Output (B×N×values) in slot order."""
        visible = self.proj[other](other_latents)
        count = visible.shape[1]
        if count >= length:
            raise ValueError(f"inpainting {modality} ({length} tokens) from {count} visible {other} tokens leaves no "
                             f"slot to predict; mask more of {other}")
        slots = torch.cat([visible, self.mask_token[modality].to(visible.dtype).expand(visible.shape[0], length - count, -1)], 1)
        slots = slots + self.positions[modality].rows(length).to(visible.dtype)
        stack = self.stack_of(modality) if self.strategy != "joint" else "joint"
        return self.pred[modality](self.run(stack, slots))


def slot_mask(batch: int, length: int, count: int, device: torch.device) -> Mask:
    """The inpainting loss mask: slots count.. are the predicted ones."""
    masked = torch.zeros(batch, length, dtype=torch.bool, device=device)
    masked[:, count:] = True
    return Mask.from_masked(masked)


class AudioVisualMAE(nn.Module):
    """Audiovisual MAE (see the module docstring). Components: ``patchifiers`` (video cubes on
    ``"inputs"``, audio patches on ``"audio"``), ``maskers`` (one random masker per modality),
    ``encoder`` (:class:`AudioVisualEncoder`), ``decoder`` (:class:`AudioVisualDecoder`), ``loss``
    (``NamedLosses`` over the parts ``audio`` and ``video``, weights 0.5 / 0.5). ``inpainting``:
    each modality is reconstructed from the other's visible tokens instead (the reference's
    ``use_inpainting``). ``targets``: "pixels" (the reference: raw patches) or "norm_pixels" per
    modality (per-patch normalised, Audio-MAE's and MAE's)."""

    #: parts only pre-training reads: a file without them (an exported encoder) still loads
    pretraining_only: tuple[str, ...] = ("decoder.",)

    def __init__(self, patchifiers: Mapping[str, nn.Module], mask_ratios: Mapping[str, float], encoder: AudioVisualEncoder,
                 decoder: AudioVisualDecoder, loss: NamedLosses | dict, inpainting: bool = False,
                 targets: Mapping[str, str] | None = None) -> None:
        super().__init__()
        from maekit.registry import build

        self.patchifiers = nn.ModuleDict(dict(patchifiers))
        unknown = sorted(set(mask_ratios) - set(MODALITIES))
        if unknown or set(mask_ratios) != set(MODALITIES):
            raise ValueError(f"mask_ratios names the modalities {', '.join(MODALITIES)}; got {sorted(mask_ratios)}")
        self.maskers = nn.ModuleDict({m: RandomMasker(mask_ratios[m], rounding="removed") for m in MODALITIES})
        self.encoder, self.decoder = encoder, decoder
        self.loss = build("loss", loss)
        self.inpainting = bool(inpainting)
        self.targets = {m: "pixels" for m in MODALITIES} | dict(targets or {})
        for name, kind in self.targets.items():
            if name not in MODALITIES or kind not in ("pixels", "norm_pixels"):
                raise ValueError(f"targets maps video/audio to 'pixels' or 'norm_pixels', got {name!r}: {kind!r}")
        # core's targets (no weights): raw patches, or MAE's per-patch norm-pix (unbiased variance,
        # eps 1e-6 inside the root), which also put a prediction back in token values for pictures
        self.target_makers = nn.ModuleDict({m: build("target", dict(type=self.targets[m])) for m in MODALITIES})

    # -- the steps ------------------------------------------------------------------------------
    def tokenize(self, batch: Mapping[str, Any]) -> dict[str, Tokens]:
        if not isinstance(batch, Mapping) or "audio" not in batch:
            raise ValueError("an audio-visual model reads batches with the clips under 'inputs' and the spectrograms "
                             "under 'audio' (use an audio-visual dataset: av_clips, av_folder, av_vggsound)")
        return {m: self.patchifiers[m](batch) for m in MODALITIES}

    def split_noise(self, noise: NoiseSource, tokens: Mapping[str, Tokens], views: int = 1) -> list[dict[str, Any]]:
        """Per view, each modality's masking noise, all cut from one draw per sample of the engine's
        seeded noise (so no two masks share numbers)."""
        if noise is None:
            return [{m: None for m in MODALITIES} for _ in range(views)]
        lengths = [tokens[m].num_tokens for m in MODALITIES]
        batch = tokens["video"].batch_size
        drawn = noise if isinstance(noise, torch.Tensor) else noise((batch, views * sum(lengths)), tokens["video"].values.device)
        parts = iter(drawn.split(lengths * views, dim=1))
        return [{m: next(parts) for m in MODALITIES} for _ in range(views)]

    def make_masks(self, tokens: Mapping[str, Tokens], noise: Mapping[str, Any]) -> dict[str, Mask]:
        return {m: self.maskers[m](tokens[m], noise=noise[m]) for m in MODALITIES}

    def make_target(self, tokens: Tokens, modality: str) -> torch.Tensor:
        """Raw patches, or per patch (x − mean)/√(unbiased var + 1e-6) (core's ``norm_pixels``)."""
        return self.target_makers[modality](tokens).float()

    #: whether a loss reads each modality's features before the joint blocks (MAViL's contrast)
    reads_unimodal = False

    def encode_visible(self, tokens: Mapping[str, Tokens], masks: Mapping[str, Mask]) -> Encoded:
        return self.encoder({m: tokens[m].take(masks[m].ids_keep) for m in MODALITIES}, unimodal=self.reads_unimodal)

    def reconstruct(self, latents: Mapping[str, torch.Tensor], masks: dict[str, Mask], tokens: Mapping[str, Tokens],
                    targets: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Mask]]:
        """Predictions, targets and loss masks per modality: each rebuilt from its own visible
        tokens, or inpainted from the other's (slot order, targets and masks as the reference's)."""
        if not self.inpainting:
            return self.decoder(latents, masks, tokens), targets, masks
        pred, target, loss_masks = {}, {}, {}
        for m, other in zip(MODALITIES, reversed(MODALITIES)):
            length = tokens[m].num_tokens
            pred[m] = self.decoder.inpaint(m, latents[other], other, length, tokens[m])
            target[m] = targets[m]  # original order: slot j ≥ K is compared with patch j, as the reference
            loss_masks[m] = slot_mask(tokens[m].batch_size, length, latents[other].shape[1], pred[m].device)
        return pred, target, loss_masks

    # -- the pass -------------------------------------------------------------------------------
    def run_steps(self, batch: Mapping[str, Any], noise: NoiseSource = None) -> ForwardPass:
        tokens = self.tokenize(batch)
        masks = self.make_masks(tokens, self.split_noise(noise, tokens)[0])
        targets = {m: self.make_target(tokens[m], m) for m in MODALITIES}
        encoded = self.encode_visible(tokens, masks)
        pred, targets, loss_masks = self.reconstruct(encoded.fused, masks, tokens, targets)
        return ForwardPass(batch=batch, tokens=tokens["video"], target=targets, mask=masks["video"],
                           latents=encoded.fused["video"], pred=pred,
                           extras={"tokens": tokens, "masks": masks, "loss_masks": loss_masks, "encoded": encoded})

    def compute_loss(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        return self.loss(out.pred, out.target, out.extras["loss_masks"])

    def forward(self, batch: Mapping[str, Any], noise: NoiseSource = None) -> dict[str, torch.Tensor]:
        return self.compute_loss(self.run_steps(batch, noise))

    # -- features (nothing masked) --------------------------------------------------------------
    def encode_streams(self, batch: Mapping[str, Any], modalities: Sequence[str] = MODALITIES,
                       unimodal: bool = False) -> Encoded:
        """Every token of the modalities named, encoded together (both) or alone (one); ``unimodal``
        as :class:`AudioVisualEncoder` takes it."""
        present = {m: self.patchifiers[m](batch) for m in modalities}
        return self.encoder(present, unimodal=unimodal)

    def pooled(self, batch: Mapping[str, Any], modalities: Sequence[str] = MODALITIES) -> dict[str, torch.Tensor]:
        """Mean-pooled encoder outputs (B×D) per modality, the modalities encoded together."""
        return {m: tokens.mean(dim=1) for m, tokens in self.encode_streams(batch, modalities).fused.items()}

    def retrieval_features(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Each modality's clip feature (B×D) for audio↔video retrieval, every modality encoded
        alone so that neither side sees its pair: here the mean of its encoder outputs."""
        return {m: self.pooled(batch, (m,))[m] for m in MODALITIES}

    def encode(self, batch: Any, mask: Any = None) -> torch.Tensor:
        """Core's single-stream commands (``maekit probe``, ``maekit finetune``) pass frames only;
        an audio-visual model is evaluated by ``maekit av-eval``."""
        raise ValueError(f"{type(self).__name__} reads video and audio together; core's probe and fine-tuning pass "
                         f"frames only — evaluate it with 'maekit av-eval CONFIG --checkpoint FILE'")

    @torch.no_grad()
    def panels(self, batch: Any, mean: Any = None, std: Any = None, seed: int = 0) -> list[list[Any]]:
        """Per clip: frames (input | masked | reconstruction) and the spectrogram (input | masked |
        reconstruction), masks seeded by ``seed``; ``batch`` holds clips and spectrograms."""
        from maekit.model import seeded_noise
        from maekit_audiovisual.visualize import av_panels

        if not isinstance(batch, Mapping):
            raise ValueError("maekit visualize passes frames only; an audio-visual model's pictures (frames and "
                             "spectrograms) are drawn by 'maekit demo audiovisual' or maekit_audiovisual.visualize.av_panels")
        self.eval()
        return av_panels(self, self.run_steps(batch, noise=seeded_noise(seed)))

    def panel_titles(self) -> Any:
        """The columns :meth:`panels` draws."""
        from maekit_audiovisual.visualize import AV_TITLES

        return AV_TITLES


class MAViL(AudioVisualMAE):
    """MAViL (no code released; every open setting is a config value, see the README).

    Stage 1 (``teacher=None``): ``views`` differently masked copies of each clip (2); for each, the
    audio and video reconstruction (per-patch normalised targets by default) through one decoder
    per modality; the inter-modal contrast of the clip's audio and video features (each the mean of
    its tokens after the modality's own encoder, averaged over the views, cosine similarity over the
    batch, both directions) and the intra-modal contrast of the two views of each modality.
    Stage 2 (``teacher`` = the frozen stage-1 model): the reconstruction targets become the
    teacher's fused encoder outputs of the unmasked clip (``target_norm`` per token), predicted at
    the removed tokens; the contrastive terms stay. Loss parts: ``audio``, ``video``, ``inter``,
    ``intra_audio``, ``intra_video``."""

    # the projector stays: retrieval reads the contrast space through it
    pretraining_only = ("decoder.", "teacher.")

    def __init__(self, *args: Any, views: int = 2, teacher: Teacher | None = None, target_norm: str = "layernorm",
                 contrast_on: str = "unimodal", projector: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from maekit.nn.contrastive import MLPProjector

        # an optional projection head per modality for the contrastive terms (core's MLPProjector:
        # Linear → BatchNorm → ReLU …, e.g. dict(hidden_dim=256, out_dim=128, layers=2))
        dim = self.encoder.embed_dim
        self.projector = None if projector is None else nn.ModuleDict(
            {m: MLPProjector(dim, int(projector.get("hidden_dim", dim)), int(projector.get("out_dim", dim)),
                             int(projector.get("layers", 2))) for m in MODALITIES})
        if projector is not None and set(projector) - {"hidden_dim", "out_dim", "layers"}:
            raise ValueError(f"MAViL's projector takes hidden_dim, out_dim, layers; got {sorted(projector)}")
        if views not in (1, 2):
            raise ValueError(f"MAViL takes 1 or 2 masked views per clip, got views={views}")
        if contrast_on not in ("unimodal", "fused"):
            raise ValueError(f"contrast_on must be 'unimodal' or 'fused', got {contrast_on!r}")
        needed = {"audio", "video", "inter"} | ({"intra_audio", "intra_video"} if views == 2 else set())
        if not isinstance(self.loss, NamedLosses) or set(self.loss.parts) != needed:
            raise ValueError(f"MAViL's loss is NamedLosses over the parts {', '.join(sorted(needed))} (views={views})")
        normalize_features(torch.zeros(1, 2), target_norm)  # a typo'd norm fails when built
        self.views, self.teacher, self.target_norm, self.contrast_on = views, teacher, target_norm, contrast_on
        self.reads_unimodal = contrast_on == "unimodal"

    @torch.no_grad()
    def teacher_targets(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Stage 2's targets: the frozen stage-1 model's fused outputs of every token, normalised."""
        assert self.teacher is not None
        fused = self.teacher.module.encode_streams(batch).fused
        return {m: normalize_features(fused[m], self.target_norm) for m in MODALITIES}

    def summary(self, encoded: Encoded) -> dict[str, torch.Tensor]:
        """Each modality's clip feature for the contrastive terms (of the modalities ``encoded``
        holds): the mean of its tokens (through the modality's projector when there is one)."""
        source = encoded.unimodal if self.contrast_on == "unimodal" else encoded.fused
        pooled = {m: tokens.mean(dim=1) for m, tokens in source.items()}
        return pooled if self.projector is None else {m: self.projector[m](value) for m, value in pooled.items()}

    def retrieval_features(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Retrieval in the space the inter-modal term aligns: :meth:`summary` of each modality of
        the unmasked clip, encoded alone as training encodes it for the contrast (``unimodal``: for
        early fusion the modality through the joint blocks alone), so the pair never meets."""
        return {m: self.summary(self.encode_streams(batch, (m,), unimodal=self.reads_unimodal))[m] for m in MODALITIES}

    def run_steps(self, batch: Mapping[str, Any], noise: NoiseSource = None) -> ForwardPass:
        tokens = self.tokenize(batch)
        view_noise = self.split_noise(noise, tokens, self.views)
        if self.teacher is None:
            targets = {m: self.make_target(tokens[m], m) for m in MODALITIES}
        else:
            targets = self.teacher_targets(batch)
        preds, masks, features, latents = [], [], [], []
        for noise_of_view in view_noise:  # each view: its own masks, encoder pass and reconstruction
            view_masks = self.make_masks(tokens, noise_of_view)
            encoded = self.encode_visible(tokens, view_masks)
            preds.append(self.decoder(encoded.fused, view_masks, tokens))
            masks.append(view_masks)
            latents.append(encoded.fused["video"])
            features.append({m: F.normalize(f, dim=-1) for m, f in self.summary(encoded).items()})
        # the views' predictions stacked along the batch: one masked MSE over every view's removed tokens
        pred: dict[str, Any] = {m: torch.cat([p[m] for p in preds]) for m in MODALITIES}
        target: dict[str, Any] = {m: torch.cat([targets[m]] * self.views) for m in MODALITIES}
        loss_masks = {m: Mask.from_masked(torch.cat([v[m].masked for v in masks]).bool()) for m in MODALITIES}
        clip = {m: F.normalize(torch.stack([f[m] for f in features]).mean(0), dim=-1) for m in MODALITIES}
        pred["inter"], target["inter"] = clip["audio"] @ clip["video"].t(), None
        if self.views == 2:
            for m in MODALITIES:
                pred[f"intra_{m}"], target[f"intra_{m}"] = features[0][m] @ features[1][m].t(), None
        return ForwardPass(batch=batch, tokens=tokens["video"], target=target, mask=masks[0]["video"],
                           latents=latents[0], pred=pred,
                           extras={"tokens": tokens, "masks": masks[0], "loss_masks": loss_masks, "views": masks})


# -- builders -------------------------------------------------------------------------------------

#: encoder width, depth, heads (ViT-S/B/L)
SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
#: the reference's decoder width, depth, heads per encoder size (B: 384/4/6, L: 512/4/8)
DECODERS = {"tiny": (192, 4, 3), "small": (256, 4, 8), "base": (384, 4, 6), "large": (512, 4, 8)}


def _components(size: str | None, encoder: dict | None, decoder: dict | None, num_frames: int, img_size: int,
                tubelet_size: int, patch_size: int, audio_patch_size: int | None, audio_frames: int, num_mel_bins: int,
                fusion: str,
                joint_depth: int, decoder_strategy: str, drop_path_rate: float,
                out_dims: Mapping[str, int] | None = None) -> tuple[dict, AudioVisualEncoder, AudioVisualDecoder]:
    if size is not None and size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)} (or None with encoder=... and decoder=...), got {size!r}")
    if size is None and (not encoder or not decoder):
        raise ValueError("size=None needs encoder=dict(embed_dim, depth, num_heads) and decoder=dict(embed_dim, depth, num_heads)")
    enc = dict(zip(("embed_dim", "depth", "num_heads"), SIZES[size])) if size else {}
    enc.update(encoder or {})
    dec = dict(zip(("embed_dim", "depth", "num_heads"), DECODERS[size])) if size else {}
    dec.update(decoder or {})
    audio_patch = audio_patch_size or patch_size
    for what, given in (("video", (num_frames % tubelet_size, img_size % patch_size)),
                        ("audio", (audio_frames % audio_patch, num_mel_bins % audio_patch))):
        if any(given):
            raise ValueError(f"the {what} input does not divide into patches: frames {num_frames}/{tubelet_size}, size "
                             f"{img_size}/{patch_size}, spectrogram {audio_frames}×{num_mel_bins}/{audio_patch}")
    patch_dims = {"video": tubelet_size * patch_size * patch_size * 3, "audio": audio_patch * audio_patch}
    positions = {"video": (num_frames // tubelet_size) * (img_size // patch_size) ** 2,
                 "audio": (audio_frames // audio_patch) * (num_mel_bins // audio_patch)}
    patchifiers = {"video": CubePatchifier(patch_size, tubelet_size, 3, key="inputs"),
                   "audio": ImagePatchifier(audio_patch, 1, key="audio")}
    encoder_module = AudioVisualEncoder(patch_dims, positions, fusion=fusion, joint_depth=joint_depth,
                                        drop_path_rate=drop_path_rate, **enc)
    decoder_module = AudioVisualDecoder(encoder_module.embed_dim, patch_dims, positions, strategy=decoder_strategy,
                                        out_dims=out_dims, **dec)
    return patchifiers, encoder_module, decoder_module


def av_mae(size: str | None = "base", num_frames: int = 16, img_size: int = 224, tubelet_size: int = 2,
           patch_size: int = 16, audio_patch_size: int | None = None, audio_frames: int = 992, num_mel_bins: int = 128,
           audio_mask_ratio: float = 0.7,
           video_mask_ratio: float = 0.9, fusion: str = "mid", joint_depth: int = 2, decoder_strategy: str = "shared",
           inpainting: bool = False, modality_weights: Mapping[str, float] | None = None,
           targets: Mapping[str, str] | None = None, encoder: dict | None = None, decoder: dict | None = None,
           drop_path_rate: float = 0.0) -> AudioVisualMAE:
    """Audiovisual MAE with the reference's settings: 16 frames in 2×16×16 cubes, a (992 × 128)
    log-mel spectrogram in 16×16 patches (the reference's 1000 frames lose their last 8 to its VALID
    patching: the same 62×8 tokens), audio masked at 0.7 and video at 0.9, mid fusion with the last
    2 blocks joint, one shared decoder run per modality, raw-patch targets, loss 0.5·audio +
    0.5·video."""
    patchifiers, enc, dec = _components(size, encoder, decoder, num_frames, img_size, tubelet_size, patch_size,
                                        audio_patch_size, audio_frames, num_mel_bins, fusion, joint_depth,
                                        decoder_strategy, drop_path_rate)
    weights = {"audio": 0.5, "video": 0.5} | dict(modality_weights or {})
    loss = NamedLosses({"audio": dict(type="masked_mse", name="audio_mse"), "video": dict(type="masked_mse", name="video_mse")},
                       weights)
    return AudioVisualMAE(patchifiers, {"audio": audio_mask_ratio, "video": video_mask_ratio}, enc, dec, loss,
                          inpainting, targets)


def mavil(size: str | None = "base", num_frames: int = 16, img_size: int = 224, tubelet_size: int = 2,
          patch_size: int = 16, audio_patch_size: int | None = None, audio_frames: int = 1024, num_mel_bins: int = 128,
          mask_ratio: float = 0.8,
          fusion: str = "mid", joint_depth: int = 2, views: int = 2, temperature: float = 0.05,
          weights: Mapping[str, float] | None = None, targets: Mapping[str, str] | None = None,
          contrast_on: str = "unimodal", projector: dict | None = None, teacher: dict | None = None,
          target_norm: str = "layernorm",
          encoder: dict | None = None, decoder: dict | None = None, drop_path_rate: float = 0.0) -> MAViL:
    """MAViL: audio (Audio-MAE's 1024 × 128 spectrogram) and video both masked at ``mask_ratio``
    (the paper's 0.8), per-modality encoders with ``joint_depth`` fusion blocks, one decoder per
    modality, per-patch normalised targets, contrastive terms at ``temperature`` with ``weights``
    (defaults: reconstruction 1 each, inter-modal and intra-modal 0.01 each — CAV-MAE's weight, no
    released MAViL value). ``teacher``: ``dict(model=<the stage-1 model config>, checkpoint=<its
    trained weights>)`` makes this stage 2 (the decoders then predict the teacher's features)."""
    frozen = None
    out_dims = None
    if teacher is not None:
        frozen = stage_one_teacher(teacher)
        width = frozen.module.encoder.embed_dim
        out_dims = {m: width for m in MODALITIES}
    patchifiers, enc, dec = _components(size, encoder, decoder, num_frames, img_size, tubelet_size, patch_size,
                                        audio_patch_size, audio_frames, num_mel_bins, fusion, joint_depth, "separate",
                                        drop_path_rate, out_dims)
    parts: dict[str, Any] = {"audio": dict(type="masked_mse", name="audio_mse"), "video": dict(type="masked_mse", name="video_mse"),
                             "inter": dict(type="pair_contrastive", temperature=temperature, directions="mean", name="inter")}
    defaults = {"audio": 1.0, "video": 1.0, "inter": 0.01}
    if views == 2:
        for m in MODALITIES:
            parts[f"intra_{m}"] = dict(type="pair_contrastive", temperature=temperature, directions="mean", name=f"intra_{m}")
            defaults[f"intra_{m}"] = 0.01
    loss = NamedLosses(parts, defaults | dict(weights or {}))
    ratios = {"audio": mask_ratio, "video": mask_ratio}
    target_kinds = {"audio": "norm_pixels", "video": "norm_pixels"} | dict(targets or {})
    return MAViL(patchifiers, ratios, enc, dec, loss, False, target_kinds, views=views, teacher=frozen,
                 target_norm=target_norm, contrast_on=contrast_on, projector=projector)


def stage_one_teacher(spec: Mapping[str, Any]) -> Teacher:
    """MAViL stage 2's teacher: the stage-1 model of ``spec["model"]`` with the weights of
    ``spec["checkpoint"]`` (any file ``maekit`` trains or exports; nothing pickled runs), frozen."""
    from maekit.eval.probe import load_trained_model

    unknown = sorted(set(spec) - {"model", "checkpoint"})
    if unknown or "model" not in spec:
        raise ValueError(f"MAViL's teacher is dict(model=<stage-1 model config>, checkpoint=<its weights>); got keys "
                         f"{sorted(spec)}")
    if not spec.get("checkpoint"):
        raise ValueError("MAViL stage 2 needs its stage-1 weights: set model.teacher.checkpoint=<the stage-1 run's "
                         "iter_N.pth> (e.g. --cfg-options model.teacher.checkpoint=work_dirs/mavil/iter_800.pth)")
    module = load_trained_model(dict(spec["model"]), spec["checkpoint"])
    if not isinstance(module, AudioVisualMAE):
        raise ValueError(f"MAViL's teacher must be an audio-visual model (mavil stage 1), got {type(module).__name__}")
    return Teacher(module, "frozen", student="", source=str(spec["checkpoint"]))
