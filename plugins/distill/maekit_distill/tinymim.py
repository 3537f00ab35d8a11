"""TinyMIM (Ren et al., CVPR 2023, *TinyMIM: An Empirical Study of Distilling MIM Pre-trained
Models*; reference code OliverRensu/TinyMIM): a small ViT learns the attention relations a frozen
MAE teacher has at one block — no masking, no decoder, no pixels.

One pass, top to bottom: two views of one crop (the same RandomResizedCrop and flip; colour jitter
0.4/0.4/0.4 on the student's view only) → the teacher's block 18 (1-based, of ViT-L's 24) on the
clean view and the student's last block on the jittered one each give, per head, the relation
maps R_qk = softmax(q·kᵀ/√d) and R_vv = softmax(v·vᵀ/√d) of that block's LayerNorm'ed input
(the student's last block read in the teacher's head count; the rest of it, and the final norm,
never run in pre-training — DDP needs ``find_unused_parameters = True``, set in the configs) → KL(teacher ‖ student), summed over keys and averaged over queries, heads
and batch, for both maps, added.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from maekit.data.multiview import MultiView
from maekit.eval.visualize import PanelTitles
from maekit.methods.mae import encoder_name_for
from maekit.nn.encoder import ViTEncoder
from maekit.nn.patchify import ImagePatchifier
from maekit.nn.teachers import Teacher, image_mae_teacher
from maekit.ops import split_pair
from maekit.structures import Tokens

__all__ = ["TinyMIM", "TeacherStudentViews", "attention_relations", "relation_kl", "tinymim"]


class TeacherStudentViews(MultiView):
    """TinyMIM's ``TwoCropsTransform`` as core views (:class:`~maekit.data.multiview.MultiView`):
    one RandomResizedCrop (scale 0.2–1, bicubic) and flip shared, then the teacher's view as is and
    the student's after ColorJitter(``jitter``), both normalised; returns (2, C, H, W): teacher
    view first."""

    def __init__(self, size: int | Sequence[int] = 224, scale: Sequence[float] = (0.2, 1.0), flip: bool = True,
                 jitter: Sequence[float] = (0.4, 0.4, 0.4), mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        brightness, contrast, saturation = (float(j) for j in jitter)
        shared = [dict(type="resized_crop", size=size, scale=tuple(scale))] + ([dict(type="hflip")] if flip else [])
        student = [dict(type="color_jitter", brightness=brightness, contrast=contrast, saturation=saturation, hue=0.0, p=1.0)]
        super().__init__(views=dict(teacher=[], student=student), shared=shared, mean=mean, std=std)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.stack(list(super().__call__(image).values()))


def attention_relations(attn: Any, x: torch.Tensor, num_heads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-relations (B × heads × N × N, float32) of a self-attention module with timm's layout on
    its (already LayerNorm'ed) input ``x``, its q/k/v split into ``num_heads`` heads (default its
    own): log softmax(q·kᵀ·d⁻½) and log softmax(v·vᵀ·d⁻½), d the head width — the reference's
    ``return_relation`` maps taken in log space (the same values; no log of a softmax that
    underflowed to 0)."""
    batch, length, _ = x.shape
    heads = num_heads or attn.num_heads
    q, k, v = attn.qkv(x).float().reshape(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)
    scale = q.shape[-1] ** -0.5
    return (q @ k.transpose(-2, -1) * scale).log_softmax(-1), (v @ v.transpose(-2, -1) * scale).log_softmax(-1)


def relation_kl(teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) summed over keys, averaged over everything else (the reference's
    ``KLDivLoss(reduction="none")(pred.log(), target).sum(-1).mean()``)."""
    return F.kl_div(student_log, teacher_log, reduction="none", log_target=True).sum(-1).mean()


class TinyMIM(nn.Module):
    """A student ViT trained on a frozen teacher's attention relations. Training batches are view
    pairs (B, 2, C, H, W) from :class:`TeacherStudentViews`; :meth:`encode` reads single images."""

    def __init__(self, patchifier: ImagePatchifier, encoder: ViTEncoder, teacher: Teacher, teacher_block: int) -> None:
        super().__init__()
        self.patchifier, self.encoder, self.teacher, self.teacher_block = patchifier, encoder, teacher, teacher_block

    @staticmethod
    def views(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's and the student's views (B, C, H, W) of a batch of view pairs."""
        return split_pair(batch, 1, "tinymim trains on view pairs (B, 2, C, H, W) — "
                                    "transform=dict(type='tinymim_views', ...) —")

    @staticmethod
    def relations(encoder: Any, tokens: Tokens, block: int, num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The relations of ``encoder``'s block ``block`` (1-based) for ``tokens`` in ``num_heads``
        heads: its input is the state after block − 1, through the block's first LayerNorm."""
        x = encoder.forward_intermediates(tokens, [block - 1]).features[block - 1]
        layer = encoder.blocks[block - 1]
        return attention_relations(layer.attn, layer.norm1(x), num_heads)

    @property
    def num_heads(self) -> int:
        """The teacher's head count at its block, in which both sides' relations are taken."""
        return int(self.teacher.module.blocks[self.teacher_block - 1].attn.num_heads)  # type: ignore[index]

    def forward(self, batch: Any, noise: Any = None) -> dict[str, torch.Tensor]:
        teacher_view, student_view = self.views(batch)
        with torch.no_grad():
            teacher_qk, teacher_vv = self.relations(self.teacher.module, self.patchifier(teacher_view), self.teacher_block,
                                                    self.num_heads)
        student_qk, student_vv = self.relations(self.encoder, self.patchifier(student_view), len(self.encoder.blocks),
                                                self.num_heads)
        qk, vv = relation_kl(teacher_qk, student_qk), relation_kl(teacher_vv, student_vv)
        return {"loss": qk + vv, "qk_kl": qk, "vv_kl": vv}

    def encode(self, batch: Any, mask: Any = None) -> torch.Tensor:
        """Encoder features B×(1+N)×D of single images, for probes and fine-tuning."""
        tokens = self.patchifier(batch)
        return self.encoder(tokens if mask is None else tokens.take(mask.ids_keep))

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """Per image: input | the teacher's class-token attention at its block | the student's at
        its last block (heads averaged, each map scaled to [0, 1])."""
        from maekit.eval.visualize import patch_map_panels, uint8_panels

        self.eval()
        tokens = self.patchifier(images)
        grid = tuple(tokens.meta["grid_size"])
        maps = []
        for encoder, block in ((self.teacher.module, self.teacher_block), (self.encoder, len(self.encoder.blocks))):
            qk, _ = self.relations(encoder, tokens, block, self.num_heads)
            maps.append(patch_map_panels(qk.exp()[:, :, 0, 1:].mean(1), grid, images.shape[-2:]))
        pixels = images.float() * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
        shown = pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels
        return [list(row) for row in zip(uint8_panels(shown.clamp(0, 1)), *maps)]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`: the class token's attention maps, with their blocks."""
        return PanelTitles(columns=("input", f"teacher attention (block {self.teacher_block})",
                                    f"student attention (block {len(self.encoder.blocks)})"))


def tinymim(teacher: Mapping[str, Any], size: str | None = "base", img_size: int | tuple[int, int] = 224,
            patch_size: int | None = None, in_chans: int = 3, encoder_name: str | None = None,
            encoder: dict[str, Any] | None = None, teacher_block: int = 18, drop_path: float = 0.1,
            drop_path_rate: float = 0.0) -> TinyMIM:
    """TinyMIM with the paper's ViT-B recipe: a frozen MAE ViT-L teacher's block 18; both sides'
    relations in the teacher's head count (16 for ViT-L: 48-wide heads of the ViT-B student's last
    block, whose weights stay a plain 12-head block's, as the reference fine-tunes them); drop
    path ``drop_path`` (0.1) on every block but the last, constant, as the reference's pre-training
    — unless ``drop_path_rate`` (timm's linear ramp over all blocks, what fine-tuning sets) is
    given. ``teacher``: ``dict(checkpoint=<file>, layout="official"|"maekit", size="large" or
    encoder_name=..., encoder=dict(...))``; for ViT-S/T students the reference uses a ViT-B
    teacher's last block (``size="base", teacher_block=12``)."""
    from timm.layers import DropPath

    name = encoder_name_for(size, encoder_name, "tinymim")
    student = ViTEncoder(name, img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                         drop_path_rate=drop_path_rate, **(encoder or {}))
    frozen = image_mae_teacher({"size": "large", **teacher}, img_size, student.patch_size[0], in_chans, "tinymim teacher")
    depth = len(frozen.module.blocks)  # type: ignore[arg-type]
    if not 1 <= teacher_block <= depth:
        raise ValueError(f"tinymim teacher_block must be in 1..{depth} (1-based, the teacher's depth), got {teacher_block}")
    heads = frozen.module.blocks[teacher_block - 1].attn.num_heads  # type: ignore[index]
    if student.embed_dim % heads:
        raise ValueError(f"tinymim: the student's width {student.embed_dim} does not split into the teacher's {heads} heads")
    if not drop_path_rate:  # pre-training: the reference's constant drop path, none on the last block
        for block in list(student.blocks)[:-1]:
            block.drop_path1 = block.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
    return TinyMIM(ImagePatchifier(student.patch_size, in_chans), student, frozen, teacher_block)
