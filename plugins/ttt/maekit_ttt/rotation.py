"""TTT (Sun et al., ICML 2020): a GroupNorm ResNet split in a Y after its second stage. The shared
trunk (stem + stages 1–2) feeds the main head (stage 3 + pool + classifier) and a rotation head
(its own copy of stage 3 + pool + 4-way classifier). Trained jointly (classes + rotations); at test
time the trunk and the rotation head adapt to each test image by predicting the rotation of
augmented, randomly rotated copies of it."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PreActBlock", "ResNetTrunk", "RotationTTT", "ttt_rotation", "rotate"]


def rotate(images: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Each image (…×C×H×W, square) turned counter-clockwise by its number of quarter turns (0–3)."""
    return torch.stack([torch.rot90(image, int(k), dims=(-2, -1)) for image, k in zip(images, quarter_turns)])


class PreActBlock(nn.Module):
    """The reference's basic block: norm → ReLU → conv3×3 (stride) → norm → ReLU → conv3×3, plus the
    input; where the shape changes, the shortcut average-pools and pads the new channels with zeros."""

    def __init__(self, in_planes: int, planes: int, stride: int, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, in_planes), nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.norm2, self.conv2 = nn.GroupNorm(groups, planes), nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.stride, self.extra_channels = stride, planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        shortcut = F.avg_pool2d(x, self.stride) if self.stride > 1 else x
        if self.extra_channels:
            shortcut = torch.cat([shortcut, shortcut.new_zeros(shortcut.shape[0], self.extra_channels, *shortcut.shape[2:])], 1)
        return out + shortcut


def _stage(in_planes: int, planes: int, blocks: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(*[PreActBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1, groups)
                           for i in range(blocks)])


class ResNetTrunk(nn.Sequential):
    """Stem conv3×3 (16·width) + stages 1 and 2 (16·width, 32·width at stride 2)."""

    def __init__(self, in_chans: int, blocks: int, width: int, groups: int) -> None:
        super().__init__(nn.Conv2d(in_chans, 16 * width, 3, 1, 1, bias=False),
                         _stage(16 * width, 16 * width, blocks, 1, groups),
                         _stage(16 * width, 32 * width, blocks, 2, groups))


class _Head(nn.Sequential):
    """Stage 3 (64·width at stride 2) → norm → ReLU → global average pool → Linear."""

    def __init__(self, stage: nn.Module, width: int, groups: int, outputs: int) -> None:
        super().__init__(stage, nn.GroupNorm(groups, 64 * width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64 * width, outputs))


class RotationTTT(nn.Module):
    """The Y-shaped ResNet of TTT with a rotation head. ``forward`` (joint training): cross-entropy of
    the main head on the images + cross-entropy of the rotation head on every image in all four
    rotations (the reference's ``rotation_type="expand"``), weighted 1:1.

    Test time: ``copies`` views of the image, each randomly cropped (``crop_padding`` pixels of
    ``crop_fill`` around: the reference pads black before normalising, i.e. −1 after its 0.5/0.5
    normalisation; set −mean/std for other statistics) and flipped (``flip``), then turned by a
    random quarter turn; the loss is the rotation head's cross-entropy. Preset ``shared_and_rotation`` (the
    reference's) adapts the trunk and the rotation head; ``all`` adds the main head."""

    test_time_presets = {"shared_and_rotation": ("trunk.*", "rotation_head.*"), "all": ("*",)}

    def __init__(self, num_classes: int, in_chans: int = 3, depth: int = 26, width: int = 1, groups: int = 8,
                 crop_padding: int = 4, flip: bool = True, crop_fill: float = -1.0) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ttt_rotation depth must be 6n + 2 with n ≥ 1 (8, 14, 20, 26...), got {depth}")
        if (16 * width) % groups:
            raise ValueError(f"ttt_rotation groups={groups} must divide the narrowest stage's {16 * width} channels")
        blocks = (depth - 2) // 6
        self.trunk = ResNetTrunk(in_chans, blocks, width, groups)
        stage3 = _stage(32 * width, 64 * width, blocks, 2, groups)
        self.main_head = _Head(stage3, width, groups, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # the reference builds the rotation head from a deep copy of the initialised main net's stage 3
        self.rotation_head = _Head(copy.deepcopy(stage3), width, groups, 4)
        self.crop_padding, self.flip, self.crop_fill = crop_padding, flip, crop_fill

    @staticmethod
    def _images(batch: Any) -> torch.Tensor:
        images = batch["inputs"] if isinstance(batch, dict) else batch
        if images.shape[-1] != images.shape[-2] or images.shape[-1] % 4:
            raise ValueError(f"ttt_rotation needs square images whose side is a multiple of 4 (quarter turns, two "
                             f"stride-2 stages), got {tuple(images.shape[-2:])}")
        return images

    def forward(self, batch: Any, noise: Any = None) -> dict[str, torch.Tensor]:
        images = self._images(batch)
        labels = batch.get("label") if isinstance(batch, dict) else None
        if labels is None or (torch.as_tensor(labels) < 0).any():
            raise ValueError("ttt_rotation trains the classifier jointly: the dataset gives no label for some samples")
        labels = torch.as_tensor(labels, device=images.device)
        logits = self.main_head(self.trunk(images))
        turns = torch.arange(4, device=images.device).repeat_interleave(len(images))
        rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
        main = F.cross_entropy(logits, labels)
        rotation = F.cross_entropy(self.rotation_head(self.trunk(rotated)), turns)
        return {"loss": main + rotation, "classification": main, "rotation": rotation,
                "accuracy": (logits.argmax(-1) == labels).float().mean()}

    def classify(self, batch: Any) -> torch.Tensor:
        return self.main_head(self.trunk(self._images(batch)))

    def encode(self, batch: Any) -> torch.Tensor:
        """The trunk's pooled features (B×1×C: one token), for probes."""
        return self.trunk(self._images(batch)).mean(dim=(-2, -1))[:, None]

    def test_time_views(self, image: torch.Tensor, copies: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        self._images(image[None])
        pad, (height, width) = self.crop_padding, image.shape[-2:]
        padded = F.pad(image, (pad, pad, pad, pad), value=self.crop_fill)
        views = []
        for _ in range(copies):
            top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
            view = padded[..., top:top + height, left:left + width]
            if self.flip and bool(torch.rand((), generator=generator) < 0.5):
                view = view.flip(-1)
            views.append(view)
        turns = torch.randint(0, 4, (copies,), generator=generator)
        return {"images": rotate(torch.stack(views), turns), "turns": turns}

    def test_time_loss(self, views: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.rotation_head(self.trunk(views["images"])), views["turns"])


def ttt_rotation(num_classes: int, in_chans: int = 3, depth: int = 26, width: int = 1, groups: int = 8,
                 crop_padding: int = 4, flip: bool = True, crop_fill: float = -1.0) -> RotationTTT:
    """TTT's ResNet-``depth`` (6n + 2; the paper's 26) with GroupNorm (``groups``, the paper's 8)."""
    return RotationTTT(num_classes, in_chans, depth, width, groups, crop_padding, flip, crop_fill)
