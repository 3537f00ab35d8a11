"""Downstream tasks of a (pre-trained) MeshMAE encoder, MeshMAE's two.

- **Classification** (:class:`MeshClassifier`, ``Mesh_baseline``): the encoder over every real
  patch, max over the patch tokens, Linear to the classes; test accuracy per mesh file and
  majority-voted over the remeshed variants of each shape (``<shape>-<k>.obj``).
- **Segmentation** (:class:`MeshSegmenter`, ``Mesh_baseline_seg``): each face embedded from its 10
  features (Linear → LayerNorm → GELU → Linear → LayerNorm), concatenated with its patch's token,
  Linear to the parts; per-face accuracy.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from maekit.eval.finetune import Classifier
from maekit_mesh.features import LABEL, NUM_FEATURES
from maekit_mesh.model import fill_padding_with_mean, packed_meshes, valid_of
from maekit_mesh.remesh import FACES_PER_PATCH

__all__ = ["MeshClassifier", "MeshSegmenter", "mesh_classifier", "mesh_segmenter", "voted_accuracy",
           "classification_report", "segmentation_accuracy"]


class MeshClassifier(Classifier):
    """A mesh encoder with MeshMAE's classification head: max over the real patches' tokens → Linear."""

    def __init__(self, patchifier: nn.Module, encoder: nn.Module, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.patchifier, self.encoder = patchifier, encoder
        self.head = nn.Linear(encoder.embed_dim, num_classes)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def classify(self, batch: Any) -> torch.Tensor:
        tokens = self.patchifier(batch)
        prefix = self.encoder.num_prefix_tokens
        features = fill_padding_with_mean(self.encoder(tokens), valid_of(tokens), prefix)
        return self.head(features[:, prefix:].amax(dim=1))


class MeshSegmenter(nn.Module):
    """A mesh encoder with MeshMAE's segmentation head (``to_face_embedding`` + ``head1``)."""

    def __init__(self, patchifier: nn.Module, encoder: nn.Module, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.patchifier, self.encoder = patchifier, encoder
        dim = encoder.embed_dim
        self.face_embed = nn.Sequential(nn.Linear(NUM_FEATURES, dim), nn.LayerNorm(dim), nn.GELU(),
                                        nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.head = nn.Linear(2 * dim, num_classes)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing, ignore_index=-1)

    def classify(self, batch: Any) -> torch.Tensor:
        """Per-face logits B×P×64×classes."""
        tokens = self.patchifier(batch)
        patches = self.encoder(tokens)[:, self.encoder.num_prefix_tokens:]  # B×P×D
        faces = self.face_embed(tokens.values.reshape(*tokens.values.shape[:2], FACES_PER_PATCH, NUM_FEATURES))
        return self.head(torch.cat([faces, patches.unsqueeze(2).expand_as(faces)], dim=-1))

    def forward(self, batch: dict, noise: Any = None) -> dict[str, torch.Tensor]:
        logits = self.classify(batch)
        labels = packed_meshes(batch)[..., LABEL].long()  # −1: padding or unlabelled, ignored
        if not (labels >= 0).any():
            raise ValueError("segmentation needs per-face labels (the meshes' .json sub_labels)")
        known = labels >= 0
        accuracy = (logits.argmax(-1) == labels)[known].float().mean()
        return {"loss": self.criterion(logits.float().flatten(0, 2), labels.flatten()), "accuracy": accuracy}


def _load_encoder(model: dict, checkpoint: str | None, drop_path_rate: float):
    from maekit.eval.probe import load_trained_model

    return load_trained_model({**model, "drop_path_rate": drop_path_rate}, checkpoint).train()


def mesh_classifier(model: dict, num_classes: int, checkpoint: str | None = None, drop_path_rate: float = 0.1,
                    label_smoothing: float = 0.0) -> MeshClassifier:
    """The encoder of a (pre-trained) MeshMAE config + the classification head."""
    method = _load_encoder(model, checkpoint, drop_path_rate)
    return MeshClassifier(method.patchifier, method.encoder, num_classes, label_smoothing)


def mesh_segmenter(model: dict, num_classes: int, checkpoint: str | None = None, drop_path_rate: float = 0.0,
                   label_smoothing: float = 0.0) -> MeshSegmenter:
    """The encoder of a (pre-trained) MeshMAE config + the segmentation head."""
    method = _load_encoder(model, checkpoint, drop_path_rate)
    return MeshSegmenter(method.patchifier, method.encoder, num_classes, label_smoothing)


def voted_accuracy(predictions: np.ndarray, labels: np.ndarray, shapes: list[str]) -> float:
    """MeshMAE's majority vote: every remeshed variant of a shape votes its prediction; the shape's
    answer is the most voted class (ties: the lowest class index)."""
    votes: dict[str, np.ndarray] = {}
    truth: dict[str, int] = {}
    classes = int(max(predictions.max(), labels.max())) + 1
    for prediction, label, shape in zip(predictions, labels, shapes):
        votes.setdefault(shape, np.zeros(classes, dtype=np.int64))[prediction] += 1
        truth.setdefault(shape, int(label))
    return float(np.mean([votes[s].argmax() == truth[s] for s in votes]))


@torch.no_grad()
def classification_report(model: nn.Module, dataset: Dataset, batch_size: int = 16) -> dict[str, Any]:
    """Per-file and voted accuracy of a classifier on a :class:`~maekit_mesh.data.MeshFolder` split."""
    model.eval()
    device = next(model.parameters()).device
    predictions = []
    for batch in DataLoader(dataset, batch_size=batch_size):
        predictions.append(model.classify({"inputs": batch["inputs"].to(device)}).argmax(-1).cpu().numpy())
    predicted = np.concatenate(predictions)
    labels = np.array([dataset.label(i) for i in range(len(dataset))])
    shapes = [dataset.shape_id(i) for i in range(len(dataset))]
    return {"accuracy": float((predicted == labels).mean()), "voted_accuracy": voted_accuracy(predicted, labels, shapes),
            "test_meshes": len(labels), "test_shapes": len(set(shapes))}


@torch.no_grad()
def segmentation_accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 8) -> dict[str, Any]:
    """Share of labelled faces whose predicted part is right, over a segmentation split."""
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        inputs = batch["inputs"].to(device)
        labels = packed_meshes(inputs)[..., LABEL].long()
        known = labels >= 0
        correct += int((model.classify({"inputs": inputs}).argmax(-1) == labels)[known].sum())
        total += int(known.sum())
    return {"face_accuracy": correct / max(total, 1), "test_meshes": len(dataset), "test_faces": total}
