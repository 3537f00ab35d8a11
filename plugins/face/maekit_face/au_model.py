"""AU detection on a (pre-trained) encoder: the fine-tuned detector (a clean-face teacher, and the
pixel-level baseline under occlusion) and the occlusion-robust student of Jiang et al. (arXiv
2212.04029), which mines a frozen MAE encoder's latents of the visible patches.

No code was released for the occlusion-robust method; our reading (method note, README):

- both detectors turn encoder tokens into K AU node features with :class:`AUQueryHead` — per AU a
  linear map of the mean (visible) patch token (ME-GraphAU's per-AU features of the global
  feature), then ``depth`` self-attention blocks among the K nodes (their relations), width C —
  and a per-AU linear classifier on each node;
- the teacher is that detector fine-tuned on clean faces of the same fold, then frozen;
- the student's encoder is the frozen MAE encoder fed only the non-occluded patches (a patch is
  occluded when more than half its pixels are); only its AU head trains, under random occlusions
  (``train_occlusions``), with L = L_AU + α·L_node + β·L_edge: L_node = MSE(student nodes, teacher
  nodes on the clean face), L_edge = MSE of the K×K cosine-similarity matrices of the two;
- L_AU: binary cross-entropy per (frame, AU), weighted by JAA-Net's per-AU weights
  (:func:`~maekit_face.aus.au_weights`), averaged over the known labels (unknown = -1 left out).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from maekit.eval.finetune import Classifier
from maekit.nn.encoder import make_blocks, run_blocks
from maekit.nn.teachers import Teacher
from maekit.ops import init_mae_weights
from maekit_face.aus import f1_table
from maekit_face.occlusion import build_occlusion, occluded_tokens, visible_with_padding

__all__ = ["AUQueryHead", "AUDetector", "au_detector", "au_occlusion", "weighted_bce", "edge_matrix", "distillation_losses"]


class AUQueryHead(nn.Module):
    """K AU nodes from encoder tokens: ``mapping_depth`` transformer blocks over the tokens (the
    mapping network that reads a frozen encoder's latents; padding unseen), the mean of the (valid)
    patch tokens, each AU's own linear map of it (ME-GraphAU's per-AU node features from the global
    feature), LayerNorm, then ``depth`` self-attention blocks among the K nodes (their relations):
    node features B×K×``width``; then one linear classifier per AU on its own node (``logits``).
    The mean over the visible tokens takes any count of them (the occlusion student)."""

    def __init__(self, in_dim: int, num_aus: int, width: int = 256, depth: int = 1, num_heads: int = 8,
                 mapping_depth: int = 0, num_prefix_tokens: int = 1) -> None:
        super().__init__()
        self.num_aus, self.width, self.num_prefix_tokens = num_aus, width, num_prefix_tokens
        self.embed = nn.Linear(in_dim, width) if mapping_depth > 0 else nn.Identity()
        self.mapping = make_blocks(width, mapping_depth, num_heads) if mapping_depth > 0 else nn.Sequential()
        self.from_global = nn.Linear(width if mapping_depth > 0 else in_dim, num_aus * width)
        self.node_norm = nn.LayerNorm(width, eps=1e-6)
        # not "blocks": the layer-decay optimiser would take them for the encoder's first blocks
        self.relations = make_blocks(width, depth, num_heads) if depth > 0 else nn.Sequential()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.classifier_weight = nn.Parameter(torch.zeros(num_aus, width))
        self.classifier_bias = nn.Parameter(torch.zeros(num_aus))
        self.apply(init_mae_weights)
        nn.init.trunc_normal_(self.classifier_weight, std=0.02)

    def nodes(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Node features B×K×width of encoder tokens B×(P+T)×D (prefix tokens first, left out of
        the mean); ``valid`` B×T (False = padding, unseen)."""
        prefix = self.num_prefix_tokens
        x = self.embed(tokens)
        if len(self.mapping):
            keys = None if valid is None else torch.cat([torch.ones_like(valid[:, :prefix]), valid], dim=1)
            x = run_blocks(self.mapping, x, None, None if keys is None else keys[:, None, None, :].expand(
                -1, 1, keys.shape[1], -1))
        patches = x[:, prefix:]
        weights = torch.ones_like(patches[..., 0]) if valid is None else valid.to(patches.dtype)
        pooled = (patches * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
        nodes = self.node_norm(self.from_global(pooled).view(-1, self.num_aus, self.width))
        return self.norm(self.relations(nodes))

    def logits(self, nodes: torch.Tensor) -> torch.Tensor:
        return (nodes * self.classifier_weight).sum(-1) + self.classifier_bias


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy per (frame, AU) × the AU's weight, averaged over the known labels
    (labels -1 are left out); 0 when no label is known."""
    known = (labels >= 0).float()
    per_entry = F.binary_cross_entropy_with_logits(logits.float(), labels.clamp(min=0).float(), reduction="none")
    if weights is not None:
        per_entry = per_entry * weights.to(per_entry)
    return (per_entry * known).sum() / known.sum().clamp(min=1)


def edge_matrix(nodes: torch.Tensor) -> torch.Tensor:
    """K×K cosine similarities of each sample's AU nodes (B×K×C → B×K×K): the edge features distilled."""
    unit = F.normalize(nodes.float(), dim=-1)
    return unit @ unit.transpose(1, 2)


def distillation_losses(student: torch.Tensor, teacher: torch.Tensor) -> dict[str, torch.Tensor]:
    """Node-level (MSE of the node features) and edge-level (MSE of their cosine-similarity matrices)."""
    return {"node": F.mse_loss(student.float(), teacher.float()),
            "edge": F.mse_loss(edge_matrix(student), edge_matrix(teacher))}


class AUDetector(Classifier):
    """An encoder + :class:`AUQueryHead` over K AUs. ``freeze_encoder``: the encoder does not train
    (the student). ``drop_occluded``: under occlusion the encoder sees only the non-occluded patches
    (the student, MAE-latent mining); otherwise occluded pixels are set to 0 after normalisation
    (the pixel-level baseline). ``train_occlusions``: occlusion specs (see
    :func:`~maekit_face.occlusion.build_occlusion`), one drawn per training batch (None: clean
    training). ``teacher``: a frozen detector (same AUs, same node width) read on the clean face for
    the node and edge distillation, weights ``node_weight`` (α) and ``edge_weight`` (β)."""

    def __init__(self, patchifier: nn.Module, encoder: nn.Module, aus: Sequence[int], head: dict | None = None,
                 au_weights: Sequence[float] | None = None, freeze_encoder: bool = False, drop_occluded: bool = False,
                 train_occlusions: Sequence[dict] | None = None, occlusion_threshold: float = 0.5,
                 teacher: "AUDetector | None" = None, node_weight: float = 1.0, edge_weight: float = 1.0) -> None:
        super().__init__()
        self.patchifier, self.encoder, self.aus = patchifier, encoder, tuple(int(a) for a in aus)
        self.head = AUQueryHead(encoder.embed_dim, len(self.aus), **{"num_prefix_tokens": encoder.num_prefix_tokens,
                                                                     **(head or {})})
        weights = torch.ones(len(self.aus)) if au_weights is None else torch.as_tensor(au_weights, dtype=torch.float32)
        if weights.shape != (len(self.aus),):
            raise ValueError(f"au_weights has {weights.numel()} values for {len(self.aus)} AUs {list(self.aus)}")
        self.register_buffer("au_weights", weights)
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        self.freeze_encoder, self.drop_occluded = bool(freeze_encoder), bool(drop_occluded)
        self.train_occlusions = [build_occlusion(spec) for spec in (train_occlusions or [])]
        self.occlusion_threshold = float(occlusion_threshold)
        if teacher is not None and (teacher.aus != self.aus or teacher.head.width != self.head.width):
            raise ValueError(f"the teacher detects AUs {list(teacher.aus)} with node width "
                             f"{teacher.head.width}; the student {list(self.aus)} with "
                             f"{self.head.width}: they must match for node distillation")
        self.teacher = None if teacher is None else Teacher(teacher, mode="frozen")
        self.node_weight, self.edge_weight = float(node_weight), float(edge_weight)

    def train(self, mode: bool = True) -> "AUDetector":
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # a frozen encoder drops no paths
        return self

    @property
    def patch_size(self) -> int:
        return int(self.patchifier.patch_size[0])

    def nodes(self, batch: Any, occluded: torch.Tensor | None = None) -> torch.Tensor:
        """AU node features of ``batch["inputs"]`` under the pixel occlusion ``occluded`` (B×H×W, or None)."""
        images = batch["inputs"] if isinstance(batch, dict) else batch
        if occluded is not None and not self.drop_occluded:
            images = images.masked_fill(occluded[:, None].to(images.device), 0.0)
        tokens = self.patchifier({"inputs": images})
        valid = None
        if occluded is not None and self.drop_occluded:
            hidden = occluded_tokens(occluded.to(images.device), self.patchifier.patch_size, self.occlusion_threshold)
            tokens, valid = visible_with_padding(tokens, hidden, self.encoder.num_prefix_tokens)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            latents = self.encoder(tokens)
        return self.head.nodes(latents, valid)

    def classify(self, batch: Any, occluded: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.logits(self.nodes(batch, occluded))

    def draw_training_occlusion(self, images: torch.Tensor) -> torch.Tensor | None:
        if not self.train_occlusions:
            return None
        choice = self.train_occlusions[int(torch.randint(len(self.train_occlusions), ()))]
        if choice is None:
            return None
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
        return choice(images.shape[0], images.shape[-2], images.shape[-1], self.patch_size, generator)

    def forward(self, batch: dict, noise: Any = None) -> dict[str, torch.Tensor]:
        labels = torch.as_tensor(batch["label"], device=batch["inputs"].device)
        if labels.dim() != 2 or labels.shape[1] != len(self.aus):
            raise ValueError(f"AU labels must be B×{len(self.aus)} (AUs {list(self.aus)}), got shape {tuple(labels.shape)}")
        occluded = self.draw_training_occlusion(batch["inputs"]) if self.training else None
        nodes = self.nodes(batch, occluded)
        au_loss = weighted_bce(self.head.logits(nodes), labels, self.au_weights)
        losses = {"loss": au_loss, "au": au_loss}
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher.module.nodes(batch)
            terms = distillation_losses(nodes, target)
            losses.update(terms, loss=au_loss + self.node_weight * terms["node"] + self.edge_weight * terms["edge"])
        return losses

    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return f1_table(torch.sigmoid(logits.float()).numpy(), labels.numpy().astype(np.int64), self.aus)


def au_detector(model: dict, aus: Sequence[int], checkpoint: str | None = None, head: dict | None = None,
                au_weights: Sequence[float] | None = None, method: str = "finetune",
                teacher_checkpoint: str | None = None, train_occlusions: Sequence[dict] | None = None,
                occlusion_threshold: float = 0.5, node_weight: float = 1.0, edge_weight: float = 1.0,
                drop_path_rate: float = 0.0, freeze_encoder: bool = True) -> AUDetector:
    """An :class:`AUDetector` on the encoder of a (pre-trained) method config ``model``
    (``checkpoint``: its weights; None: random init). ``method``: "finetune" (the encoder trains on
    whole faces; the teacher and the pixel-level baseline) or "occlusion" (the frozen encoder sees
    the visible patches; distilled from the detector saved at ``teacher_checkpoint``, fine-tuned
    on clean faces with the same ``model`` and ``head``); ``freeze_encoder=False`` lets the
    occlusion student's encoder train too (on the visible patches)."""
    from maekit.eval.probe import load_trained_model
    from maekit.io.checkpoint import load_state_dict
    from maekit.io.convert import strip_runner_prefix

    if method not in ("finetune", "occlusion"):
        raise ValueError(f"au method must be 'finetune' or 'occlusion', got {method!r}")
    occlusion = method == "occlusion"
    if occlusion and teacher_checkpoint is None:
        raise ValueError("the occlusion method distils from a teacher: give teacher_checkpoint (an AU detector "
                         "fine-tuned on clean faces: maekit au-eval ... --method finetune writes one)")
    pretrained = load_trained_model({**model, "drop_path_rate": 0.0 if occlusion and freeze_encoder else drop_path_rate},
                                    checkpoint).train()
    teacher = None
    if occlusion:
        fresh = load_trained_model(model, None)
        teacher = AUDetector(fresh.patchifier, fresh.encoder, aus, head)
        state = strip_runner_prefix(load_state_dict(teacher_checkpoint))
        expected = teacher.state_dict()
        wrong = sorted(set(expected) - set(state)) or [k for k in expected if state[k].shape != expected[k].shape]
        if wrong:
            raise ValueError(f"{teacher_checkpoint}: not an AU detector of this model, head and AUs {list(aus)} "
                             f"(first differing weight: {wrong[0]})")
        teacher.load_state_dict({k: state[k] for k in expected})
    return AUDetector(pretrained.patchifier, pretrained.encoder, aus, head, au_weights,
                      freeze_encoder=occlusion and freeze_encoder,
                      drop_occluded=occlusion, train_occlusions=train_occlusions if occlusion else None,
                      occlusion_threshold=occlusion_threshold, teacher=teacher, node_weight=node_weight,
                      edge_weight=edge_weight)


def au_occlusion(model: dict, aus: Sequence[int], teacher_checkpoint: str, checkpoint: str | None = None,
                 head: dict | None = None, au_weights: Sequence[float] | None = None,
                 train_occlusions: Sequence[dict] | None = None, occlusion_threshold: float = 0.5,
                 node_weight: float = 1.0, edge_weight: float = 1.0, drop_path_rate: float = 0.0,
                 freeze_encoder: bool = True) -> AUDetector:
    """The occlusion-robust FAU method (Jiang et al.): :func:`au_detector` with ``method="occlusion"``
    — the frozen MAE encoder of ``model`` (``checkpoint``) on the visible patches, an AU head
    distilled at node and edge level from the clean-face detector at ``teacher_checkpoint``."""
    return au_detector(model, aus, checkpoint, head, au_weights, "occlusion", teacher_checkpoint, train_occlusions,
                       occlusion_threshold, node_weight, edge_weight, drop_path_rate, freeze_encoder)
