"""iBOT's pieces that AttMask trains with (github.com/bytedance/ibot, copied unchanged into
github.com/gkakogeorgiou/attmask): the projection head, the EMA teacher's outputs, the loss with
centring and sharpening, and a ratio drawn once per iteration."""
from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from maekit.data.views import mix_seed
from maekit.nn.base import Loss, Target
from maekit.nn.contrastive import mean_over_processes
from maekit.nn.schedules import Schedule, ScheduledValues
from maekit.nn.teachers import ema_teacher
from maekit.structures import Mask, Tokens

__all__ = ["IBOTHead", "IBOTTeacher", "IBOTLoss", "UniformPerStep"]


class UniformPerStep(Schedule):
    """A value drawn uniformly from [low, high] at every step, by a generator seeded by (seed,
    step): AttMask's one mask ratio per iteration, the same on every process and after a resume."""

    def __init__(self, low: float, high: float, seed: int = 0) -> None:
        if not 0 <= low <= high:
            raise ValueError(f"a uniform draw needs 0 <= low <= high, got {low!r}, {high!r}")
        self.low, self.high, self.seed = float(low), float(high), int(seed)

    def at(self, step: int) -> float:
        generator = torch.Generator().manual_seed(mix_seed(self.seed, step))
        return self.low + (self.high - self.low) * float(torch.rand((), generator=generator))

    def __repr__(self) -> str:
        return f"UniformPerStep({self.low}, {self.high})"


class IBOTHead(nn.Module):
    """DINO's / iBOT's head: Linear–GELU–Linear–GELU–Linear to a ``bottleneck_dim`` (weights trunc
    normal 0.02, zero biases), L2 normalisation, then a weight-normalised Linear without bias to
    ``out_dim`` with its norm fixed at 1 (``norm_last_layer``; the reference's ViT-S runs train it,
    ``--norm_last_layer False``). One head for the class token and the patches (``shared_head``)."""

    def __init__(self, in_dim: int, out_dim: int = 8192, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 layers: int = 3, norm_last_layer: bool = True) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"head layers must be >= 1, got {layers!r}")
        widths = [in_dim] + [hidden_dim] * (layers - 1) + [bottleneck_dim]
        steps: list[nn.Module] = []
        for index, (a, b) in enumerate(zip(widths, widths[1:])):
            steps.append(nn.Linear(a, b))
            if index < layers - 1:
                steps.append(nn.GELU())
        self.mlp = nn.Sequential(*steps)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        magnitude.data.fill_(1.0)
        magnitude.requires_grad_(not norm_last_layer)

    def forward(self, x: torch.Tensor, train_last_layer: bool = True) -> torch.Tensor:
        """Logits over ``out_dim`` for every row of ``x``. ``train_last_layer`` False (iBOT's first
        epoch) gives the last layer a zero gradient: it stays in the graph, as DDP needs of every
        parameter, and its effective weight ``g·v/‖v‖`` does not move (the reference sets the
        gradients to None, which also spares ``g`` a step of weight decay when it is trained)."""
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        weight = self.last_layer.weight
        if not train_last_layer:
            weight = weight.detach() + 0.0 * weight
        return F.linear(x, weight)


class IBOTTeacher(Target):
    """The EMA teacher (a copy of the student's encoder and head, following ``encoder`` and
    ``decoder``): for the unmasked global crops its head's logits for the class token
    (``"cls"``, B×K) and each patch (``"patch"``, B×N×K), and its last block's class-token
    attention to the patches, heads averaged, not rescaled (``"attention"``, B×N: AttMask's score)."""

    def __init__(self, encoder: nn.Module, head: nn.Module, momentum: Any = 0.996) -> None:
        super().__init__()
        self.encoder = ema_teacher(copy.deepcopy(encoder), momentum, student="encoder")
        self.head = ema_teacher(copy.deepcopy(head), momentum, student="decoder")

    @torch.no_grad()
    def forward(self, tokens: Tokens, batch: Any = None) -> dict[str, torch.Tensor]:
        encoder: Any = self.encoder.module
        found = encoder.forward_intermediates(tokens, [-1], attention=True)
        (tap,) = found.features
        logits = self.head(encoder.norm(found.features[tap]))
        prefix = encoder.num_prefix_tokens
        attention = found.attention[tap][:, :, 0, prefix:].float().mean(dim=1)
        return {"cls": logits[:, 0], "patch": logits[:, prefix:], "attention": attention}


class IBOTLoss(Loss):
    """iBOT's loss. Teacher targets: ``softmax((t − centre) / τ_t)``; student: ``log_softmax(s /
    0.1)``. Class-token term: the cross-entropy of every teacher global crop q against every
    student crop v ≠ q (globals and locals), each averaged over the batch, then over the pairs.
    Patch term: for each global crop, the cross-entropy per patch summed over its masked patches
    and divided by their count (at least 1) per image, averaged over the images (an unmasked crop
    adds 0 but counts), then over the crops. Total ``λ_cls·cls + λ_patch·patch``. After each
    step both centres move: ``c ← m·c + (1 − m)·mean`` of the teacher's class logits (the patch
    centre: of each image's mean patch logits), averaged over processes. τ_t rises linearly from
    ``warmup_*`` to its final value over ``warmup_epochs`` epochs (numpy's linspace), then stays."""

    center: torch.Tensor
    patch_center: torch.Tensor

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.07,
                 warmup_teacher_temp: float = 0.04, patch_temp: float = 0.07, warmup_patch_temp: float = 0.04,
                 warmup_epochs: int = 30, center_momentum: float = 0.9, lambda_cls: float = 1.0,
                 lambda_patch: float = 1.0) -> None:
        super().__init__()
        self.student_temp, self.center_momentum = float(student_temp), float(center_momentum)
        self.lambda_cls, self.lambda_patch = float(lambda_cls), float(lambda_patch)

        def warmup(start: float, end: float) -> Mapping[str, Any]:
            points = [(0, start), (warmup_epochs - 1, end)] if warmup_epochs > 1 else [(0, end)]
            return dict(type="piecewise", points=points, by_epoch=True)

        self.temperatures = ScheduledValues(cls=warmup(warmup_teacher_temp, teacher_temp),
                                            patch=warmup(warmup_patch_temp, patch_temp))
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("patch_center", torch.zeros(1, 1, out_dim))

    def forward(self, pred: Any, target: Any, mask: Mask) -> dict[str, torch.Tensor]:
        """``pred``: the student's ``{"cls": V×B×K (globals first), "patch": G×B×N×K}``; ``target``:
        the teacher's ``{"cls": G×B×K, "patch": G×B×N×K}``; ``mask``: the global crops' mask, rows
        crop-major (G·B×N)."""
        crops, batch = target["cls"].shape[:2]
        teacher_cls = F.softmax((target["cls"].float() - self.center) / self.temperatures["cls"], dim=-1)
        teacher_patch = F.softmax((target["patch"].float() - self.patch_center) / self.temperatures["patch"], dim=-1)
        student_cls = F.log_softmax(pred["cls"].float() / self.student_temp, dim=-1)
        student_patch = F.log_softmax(pred["patch"].float() / self.student_temp, dim=-1)
        masked = mask.masked.float().view(crops, batch, -1)
        cls_terms, patch_terms = [], []
        for q in range(crops):
            for v in range(student_cls.shape[0]):
                if v == q:
                    per_patch = -(teacher_patch[q] * student_patch[v]).sum(dim=-1)
                    per_image = (per_patch * masked[q]).sum(dim=-1) / masked[q].sum(dim=-1).clamp(min=1.0)
                    patch_terms.append(per_image.mean())
                else:
                    cls_terms.append(-(teacher_cls[q] * student_cls[v]).sum(dim=-1).mean())
        cls_loss = torch.stack(cls_terms).mean() if cls_terms else teacher_cls.new_zeros(())
        patch_loss = torch.stack(patch_terms).mean()
        if self.training:
            self.update_centers(target["cls"], target["patch"])
        return {"loss": self.lambda_cls * cls_loss + self.lambda_patch * patch_loss, "cls_loss": cls_loss.detach(),
                "patch_loss": patch_loss.detach(), "teacher_temp": cls_loss.new_tensor(self.temperatures["cls"])}

    @torch.no_grad()
    def update_centers(self, teacher_cls: torch.Tensor, teacher_patch: torch.Tensor) -> None:
        batch_center = mean_over_processes(teacher_cls.float().flatten(0, 1).mean(dim=0, keepdim=True))
        batch_patch = mean_over_processes(teacher_patch.float().mean(dim=2).flatten(0, 1).mean(dim=0, keepdim=True))
        m = self.center_momentum
        self.center.mul_(m).add_(batch_center, alpha=1 - m)
        self.patch_center.mul_(m).add_(batch_patch.unsqueeze(1), alpha=1 - m)

    def extra_repr(self) -> str:
        return f"student_temp={self.student_temp}, center_momentum={self.center_momentum}, {self.temperatures.extra_repr()}"


