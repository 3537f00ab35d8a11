"""MILAN (Hou et al., 2022, *MILAN: Masked Image Pretraining on Language Assisted Representation*;
reference code zejiangh/MILAN, ``models_milan.py``): an MAE whose target is a frozen CLIP image
encoder's features of every token, whose mask keeps the patches CLIP attends to, and whose
decoder only updates the mask tokens.

One pass, top to bottom: patchify → teacher on the whole (ImageNet-normalised) image: targets =
``ln_post`` of all 1 + N tokens then ``proj`` (B × (1+N) × 512), importance = the last block's
class-token attention to the patches, heads averaged → mask: the patches ordered by sampling
without replacement in proportion to the importance, the first 25 % KEPT (salient patches stay
visible) → student encoder on the visible tokens → prompting decoder: visible tokens (decoder
Linear + positions, and the class token) are fixed keys/values in every block and never pass its
first LayerNorm; only the mask tokens are queries and are updated → LayerNorm, Linear to 512 →
2 − 2·cos per token, the mean over ALL tokens (class token included, no mask).

The teacher is OpenAI's CLIP ViT-B/16 in open_clip's layout (``ClipTargets``: open_clip's own
``VisionTransformer`` at random init, loaded strictly from a state dict), or, where no CLIP can be
had (this machine), a frozen MAE (``MAETargets``: its final norm of every token and its last
block's class-token attention) — the demo's stand-in.
"""
from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from maekit.eval.visualize import PanelTitles, reconstruction_titles
from maekit.methods.mae import mae
from maekit.model import MaskedAutoencoder
from maekit.nn.attention import CrossAttention
from maekit.nn.base import Loss, Masker, NoiseSource, Target
from maekit.nn.decoder import MAEDecoder
from maekit.nn.masking import check_mask_ratio, draw_noise, num_visible
from maekit.nn.teachers import Teacher, frozen_teacher, image_mae_teacher
from maekit.ops import gather, init_mae_weights
from maekit.structures import ForwardPass, Mask, Prediction, Tokens

__all__ = ["ImportanceMasker", "PromptingDecoder", "CosineDistanceLoss", "TeacherTargets", "ClipTargets", "MAETargets", "MILAN",
           "milan", "load_open_clip_visual"]


class ImportanceMasker(Masker):
    """MILAN's semantic-aware masking: the tokens ordered by sampling without replacement with
    probabilities ∝ ``tokens.meta["importance"]`` (B×N), the first ``int(N·(1 − ratio))`` kept.
    The sampling is the Gumbel top-k form of the reference's ``torch.multinomial(importance, N,
    replacement=False)`` — the same law — driven by the masking noise, so masks are seeded per
    sample as every other maekit masker's."""

    def __init__(self, mask_ratio: float = 0.75) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        importance = tokens.meta.get("importance")
        if importance is None:
            raise ValueError("importance-sampled masking needs tokens.meta['importance'] (B×N), e.g. a teacher's attention")
        if tuple(importance.shape) != (tokens.batch_size, tokens.num_tokens):
            raise ValueError(f"importance must be (batch, tokens) = {(tokens.batch_size, tokens.num_tokens)}, "
                             f"got {tuple(importance.shape)}")
        if not bool(torch.isfinite(importance).all()) or bool((importance < 0).any()):
            raise ValueError("importance must be finite and non-negative (sampling weights)")
        uniform = draw_noise(self.noise_shape(tokens), noise, tokens.values.device).clamp(1e-12, 1 - 1e-7)
        keys = importance.float().clamp_min(1e-30).log() - torch.log(-torch.log(uniform))  # log p + Gumbel
        return Mask.from_order(torch.argsort(keys, dim=1, descending=True), num_visible(tokens.num_tokens, self.mask_ratio))

    def extra_repr(self) -> str:
        return f"mask_ratio={self.mask_ratio}, kept in proportion to importance"


class PromptingBlock(nn.Module):
    """The reference's ``Block_fordecoder``: the mask tokens (queries, LayerNorm'ed) attend to the
    whole sequence in which the visible tokens are fixed and un-normalised and the mask tokens are
    their LayerNorm'ed selves; then the MLP. Only the mask tokens are updated."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        from timm.layers import Mlp

        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrossAttention(dim, num_heads)  # q from the mask tokens, k/v from the sequence
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, queries: torch.Tensor, fixed: torch.Tensor, places: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(queries)
        sequence = fixed.scatter(1, places.unsqueeze(-1).expand_as(normed), normed)
        queries = queries + self.attn(normed, sequence)
        return queries + self.mlp(self.norm2(queries))


class PromptingDecoder(MAEDecoder):
    """MILAN's decoder: MAE's (Linear in, mask tokens, fixed 2-D sin-cos table, LayerNorm, Linear
    out) with :class:`PromptingBlock` s; predicts every token, class token first (B×(1+N)×out)."""

    def __init__(self, encoder_dim: int, out_dim: int, grid_size: int | tuple[int, int] = 14, embed_dim: int = 512,
                 depth: int = 8, num_heads: int = 16, mlp_ratio: float = 4.0) -> None:
        super().__init__(encoder_dim, out_dim, grid_size, embed_dim, 0, num_heads, mlp_ratio)
        self.blocks = nn.ModuleList([PromptingBlock(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.blocks.apply(init_mae_weights)

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        fixed = self.with_mask_tokens(latents, mask)
        fixed = fixed + self.position_embedding(tokens).to(fixed.dtype)  # token order, class token first
        prefix = self.num_prefix_tokens
        removed = torch.argsort(mask.ids_restore, dim=1)[:, latents.shape[1] - prefix:] + prefix  # places in the sequence
        queries = gather(fixed, removed)
        for block in self.blocks:
            queries = block(queries, fixed, removed)
        full = fixed.scatter(1, removed.unsqueeze(-1).expand_as(queries), queries)
        return self.pred(self.norm(full))


class CosineDistanceLoss(Loss):
    """``2 − 2·cos`` between prediction and target per token, the mean over every token (MILAN's
    loss: no mask — visible and class tokens count too)."""

    def forward(self, pred: Prediction, target: Prediction, mask: Mask) -> dict[str, torch.Tensor]:
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor) or pred.shape != target.shape:
            raise ValueError("the cosine distance compares two tensors of one shape")
        value = (2 - 2 * (F.normalize(pred.float(), dim=-1) * F.normalize(target.float(), dim=-1)).sum(-1)).mean()
        return {"loss": value, "cosine_distance": value}


def load_open_clip_visual(checkpoint: str | Path, model_name: str = "ViT-B-16-quickgelu") -> Teacher:
    """open_clip's image tower ``model_name`` at random init with the ``visual.*`` weights of a
    state-dict file in open_clip's layout (safetensors or a weights-only torch file: OpenAI's
    ``ViT-B-16.pt`` is TorchScript and is refused — save ``model.state_dict()`` of
    ``open_clip.create_model(model_name, pretrained="openai")`` where it can be fetched)."""
    path = Path(checkpoint)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()):
                raise ValueError(f"{path}: a TorchScript archive (OpenAI's ViT-B-16.pt is one); give a state dict in "
                                 f"open_clip's layout instead (open_clip.create_model({model_name!r}, "
                                 f"pretrained='openai').state_dict(), saved as safetensors)")
    try:
        import open_clip
    except ImportError:
        raise ValueError("a CLIP teacher needs open_clip: pip install 'maekit-distill[clip]'") from None
    visual = open_clip.create_model(model_name, pretrained=None).visual
    if getattr(visual, "proj", None) is None or getattr(visual, "attn_pool", None) is not None \
            or getattr(visual, "final_ln_after_pool", False) or not hasattr(visual, "conv1"):
        raise ValueError(f"milan teacher model_name {model_name!r}: not a CLIP ViT with ln_post and proj over every "
                         f"token (e.g. ViT-B-16-quickgelu, OpenAI's)")
    return frozen_teacher(visual, path, prefixes=("module.visual.", "visual."))


class TeacherTargets(Target):
    """A target that also says which patches matter: ``forward(tokens, batch)`` gives the frozen
    ``teacher``'s features of every token (B×(1+N)×D, class token first) and the importance of each
    patch (B×N); no inverse to pixels (pictures show the input, the mask and the importance). The
    :class:`~maekit.nn.teachers.Teacher` keeps its module in eval mode and without gradients."""

    def __init__(self, teacher: Teacher) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, tokens: Tokens, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        raise NotImplementedError


class ClipTargets(TeacherTargets):
    """CLIP's targets and importance from open_clip's ``VisionTransformer``: the image through
    ``conv1``, class and position embeddings, ``ln_pre``, the residual blocks; the last block's
    class-token attention to the patches (heads averaged, as ``nn.MultiheadAttention``'s
    ``need_weights``); ``ln_post`` of every token, then ``proj``."""

    @torch.no_grad()
    def forward(self, tokens: Tokens, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        v: Any = self.teacher.module
        images = batch["inputs"] if isinstance(batch, Mapping) else batch  # the ImageNet-normalised image, as the reference
        x = v.conv1(images).flatten(2).transpose(1, 2)
        x = torch.cat([v.class_embedding.to(x.dtype).expand(len(x), 1, -1), x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(x)
        blocks = list(v.transformer.resblocks)
        batch_first = getattr(v.transformer, "batch_first", True)
        x = x if batch_first else x.transpose(0, 1)
        for block in blocks[:-1]:
            x = block(x)
        last = blocks[-1]  # its weights asked for separately: open_clip's block returns none
        normed = last.ln_1(x)
        _, weights = last.attn(normed, normed, normed, need_weights=True, average_attn_weights=True)
        x = last(x)
        x = x if batch_first else x.transpose(0, 1)
        importance = weights[:, 0, 1:]
        return v.ln_post(x) @ v.proj, importance


class MAETargets(TeacherTargets):
    """The stand-in teacher's targets and importance: a frozen MAE encoder's output (final norm)
    of every token and its last block's class-token attention to the patches, heads averaged."""

    @torch.no_grad()
    def forward(self, tokens: Tokens, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        encoder: Any = self.teacher.module
        found = encoder.forward_intermediates(tokens, [-1], attention=True)
        depth = len(encoder.blocks)
        return encoder.norm(found.features[depth]), found.attention[depth].mean(1)[:, 0, 1:]


class MILAN(MaskedAutoencoder):
    """An MAE whose ``target`` is a teacher giving targets and importance (``ClipTargets`` or
    ``MAETargets``), masked by :class:`ImportanceMasker`, decoded by :class:`PromptingDecoder`."""

    def run_steps(self, batch: Any, noise: NoiseSource = None) -> ForwardPass:
        tokens = self.tokenize(batch)
        target, importance = self.target(tokens, batch)  # the frozen teacher reads the whole image first
        mask = self.make_mask(replace(tokens, meta={**tokens.meta, "importance": importance}), noise)
        latents = self.encoder(tokens.take(mask.ids_keep))
        pred = self.decoder(latents, mask, tokens)
        return ForwardPass(batch=batch, tokens=tokens, target=target, mask=mask, latents=latents, pred=pred,
                           extras={"importance": importance})

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Any, std: Any, seed: int = 0) -> list[list[Any]]:
        """Per image: input | what stays visible (removed patches grey) | the teacher's importance
        per patch (scaled to [0, 1])."""
        from maekit.eval.visualize import patch_map_panels, reconstruction_panels
        from maekit.model import seeded_noise

        self.eval()
        out = self.run_steps(images, noise=seeded_noise(seed))
        maps = patch_map_panels(out.extras["importance"], out.tokens.meta["grid_size"], images.shape[-2:])
        return [[*row, picture] for row, picture in zip(reconstruction_panels(self, out, mean, std), maps)]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`: core's (input | masked for a teacher's features) and the
        teacher's importance."""
        return PanelTitles(columns=(*reconstruction_titles(self.target).columns, "teacher importance"))


def milan(teacher: Mapping[str, Any], size: str | None = "base", img_size: int | tuple[int, int] = 224,
          patch_size: int | None = None, in_chans: int = 3, encoder_name: str | None = None,
          encoder: dict[str, Any] | None = None, mask_ratio: float = 0.75, decoder_embed_dim: int = 512,
          decoder_depth: int = 8, decoder_num_heads: int = 16, drop_path_rate: float = 0.0) -> MILAN:
    """MILAN with the paper's defaults (ViT-B student, mask 0.75, prompting decoder 8 × 512 × 16
    heads, Linear to the teacher's width). ``teacher``: ``dict(kind="clip", checkpoint=<open_clip
    state dict>, model_name="ViT-B-16-quickgelu")`` — OpenAI CLIP ViT-B/16 — or ``dict(kind="mae",
    checkpoint=..., layout="official"|"maekit", size=... or encoder_name=..., encoder=...)``."""
    spec = dict(teacher)
    kind = spec.pop("kind", "clip")
    base = mae(size, img_size, patch_size, in_chans, mask_ratio, False, encoder_name, encoder, decoder_embed_dim,
               decoder_depth, decoder_num_heads, drop_path_rate=drop_path_rate)
    student: Any = base.encoder
    targets: nn.Module
    if kind == "clip":
        unknown = sorted(set(spec) - {"checkpoint", "model_name"})
        if unknown:
            raise ValueError(f"milan teacher: unknown key {unknown[0]!r} (expected kind, checkpoint, model_name)")
        if not spec.get("checkpoint"):
            raise ValueError("milan teacher needs checkpoint=<file> (a frozen teacher distils nothing untrained)")
        clip = load_open_clip_visual(spec["checkpoint"], spec.get("model_name", "ViT-B-16-quickgelu"))
        visual: Any = clip.module
        if tuple(visual.grid_size) != tuple(base.decoder.grid_size):  # type: ignore[union-attr]
            raise ValueError(f"milan teacher {spec.get('model_name', 'ViT-B-16-quickgelu')}: its {tuple(visual.grid_size)} "
                             f"patch grid differs from the student's {tuple(base.decoder.grid_size)} "  # type: ignore[union-attr]
                             f"(img_size and patch_size must give the same grid)")
        targets, width = ClipTargets(clip), int(visual.output_dim)
    elif kind == "mae":
        frozen = image_mae_teacher(spec, img_size, student.patch_size[0], in_chans, "milan teacher")
        targets, width = MAETargets(frozen), int(frozen.module.embed_dim)  # type: ignore[arg-type]
    else:
        raise ValueError(f"milan teacher kind must be 'clip' or 'mae', got {kind!r}")
    grid = base.decoder.grid_size  # type: ignore[union-attr]
    decoder = PromptingDecoder(student.embed_dim, width, grid, decoder_embed_dim, decoder_depth, decoder_num_heads)
    return MILAN(patchifier=base.patchifier, masker=ImportanceMasker(mask_ratio), encoder=student, decoder=decoder,
                 target=targets, loss=CosineDistanceLoss())
