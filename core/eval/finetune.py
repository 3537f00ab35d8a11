"""Fine-tuning a pre-trained encoder for classification, MAE style: mean-pooled patch tokens,
``fc_norm`` LayerNorm, a linear head, layer-wise learning-rate decay (see
``maekit.engine.optim.LayerDecayOptimWrapperConstructor``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maekit.io.checkpoint import write_json

__all__ = ["Classifier", "ViTClassifier", "vit_classifier", "finetune_config", "layer_decay_schedule", "run_finetune", "classification_accuracy",
           "evaluate_classifier"]


class Classifier(nn.Module):
    """What every fine-tuning model shares: ``classify(batch)`` gives logits (a subclass says how),
    ``forward`` the cross-entropy (``self.criterion``) and accuracy against ``batch["label"]``,
    refusing unlabelled samples (−1)."""

    criterion: nn.Module

    def classify(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict, noise: Any = None) -> dict[str, torch.Tensor]:
        logits = self.classify(batch)
        labels = torch.as_tensor(batch["label"], device=logits.device)
        if (labels < 0).any():
            raise ValueError("fine-tuning needs labelled data: some samples have no label (-1)")
        if (labels >= logits.shape[-1]).any():
            raise ValueError(f"label {int(labels.max())} is outside the {logits.shape[-1]} classes the head was "
                             f"built for (finetune.num_classes)")
        loss = self.criterion(logits.float(), labels)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).float().mean()}

    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """The test figures from every test sample's logits and label: top-1 accuracy here (a
        multi-label classifier reports mAP instead)."""
        return {"top1_accuracy": float((logits.argmax(-1) == labels).float().mean())}


class ViTClassifier(Classifier):
    """A pre-trained encoder with MAE's fine-tuning head: mean of the patch tokens (``global_pool=
    "avg"``) or the cls token (``"token"``), LayerNorm, Linear (weights N(0, 2e-5) as the reference)."""

    def __init__(self, patchifier: nn.Module, encoder: nn.Module, num_classes: int, global_pool: str = "avg",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if global_pool not in ("avg", "token"):
            raise ValueError(f"global_pool must be 'avg' or 'token', got {global_pool!r}")
        self.patchifier, self.encoder, self.global_pool = patchifier, encoder, global_pool
        self.fc_norm = nn.LayerNorm(encoder.embed_dim, eps=1e-6)
        self.head = nn.Linear(encoder.embed_dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def classify(self, batch: Any) -> torch.Tensor:
        tokens = self.encoder(self.patchifier(batch))
        prefix = self.encoder.num_prefix_tokens
        pooled = tokens[:, prefix:].mean(dim=1) if self.global_pool == "avg" else tokens[:, 0]
        return self.head(self.fc_norm(pooled))


def vit_classifier(model: dict, num_classes: int, checkpoint: str | None = None, drop_path_rate: float = 0.0,
                   global_pool: str = "avg", label_smoothing: float = 0.0) -> ViTClassifier:
    """The encoder of a (pre-trained) method config + MAE's fine-tuning head."""
    from maekit.eval.probe import load_trained_model

    method = load_trained_model({**model, "drop_path_rate": drop_path_rate}, checkpoint).train()
    return ViTClassifier(method.patchifier, method.encoder, num_classes, global_pool, label_smoothing)


def layer_decay_schedule(schedule: dict) -> dict:
    """A fine-tuning ``schedule`` section for the engine: its ``layer_decay`` (default 0.75) handed
    to the layer-wise decay optimiser (``MaekitLayerDecayConstructor``)."""
    schedule = dict(schedule)
    layer_decay = schedule.pop("layer_decay", 0.75)
    schedule.update(constructor="MaekitLayerDecayConstructor", paramwise_cfg=dict(layer_decay=layer_decay))
    return schedule


def finetune_config(cfg, checkpoint: str | None):
    """The training config of the ``finetune`` section of a pre-training config."""
    from mmengine.config import Config

    section = cfg.get("finetune")
    if not section:
        raise ValueError(f"config {cfg.filename} has no 'finetune' section (num_classes, data, test, schedule)")
    schedule = layer_decay_schedule(section.get("schedule", {}))
    return Config(dict(
        model=dict(type=section.get("classifier", "vit_classifier"), model=cfg.model, num_classes=section["num_classes"],
                   checkpoint=None if checkpoint is None else str(checkpoint),
                   drop_path_rate=section.get("drop_path_rate", 0.1),
                   label_smoothing=section.get("label_smoothing", 0.0), **section.get("classifier_options", {})),
        data=section["data"], schedule=schedule, seed=cfg.get("seed", 0),
        log_interval=cfg.get("log_interval", 50), log_level=cfg.get("log_level", "INFO"),
        checkpoint_interval=section.get("checkpoint_interval", schedule.get("max_iters", 1))))


@torch.no_grad()
def evaluate_classifier(model: Classifier, dataset: Any, transform: Any, batch_size: int = 256) -> dict[str, float]:
    """``model.metrics`` over every sample of ``dataset`` (seen through ``transform``)."""
    from torch.utils.data import DataLoader

    from maekit.data.views import TransformedView

    model.eval()
    device = next(model.parameters()).device
    logits, labels = [], []
    for batch in DataLoader(TransformedView(dataset, transform), batch_size=batch_size):
        logits.append(model.classify({"inputs": batch["inputs"].to(device)}).float().cpu())
        labels.append(torch.as_tensor(batch["label"]))
    return model.metrics(torch.cat(logits), torch.cat(labels))


def classification_accuracy(model: Classifier, dataset: Any, transform: Any, batch_size: int = 256) -> float:
    return evaluate_classifier(model, dataset, transform, batch_size)["top1_accuracy"]


def run_finetune(cfg, checkpoint: str | None, work_dir: str | Path, amp: str = "off", device: str | None = None,
                 seed: int | None = None, resume: str | None = None) -> dict[str, Any]:
    """Fine-tune, then measure top-1 accuracy on the section's ``test`` dataset; writes metrics.json.
    ``resume``: "auto" or a checkpoint, as ``maekit train --resume``."""
    from maekit.data.views import evaluation_transform
    from maekit.engine import train
    from maekit.registry import build

    started = time.perf_counter()
    runner = train(finetune_config(cfg, checkpoint), work_dir, amp=amp, device=device, seed=seed, resume=resume)
    classifier = runner.model.module if hasattr(runner.model, "module") else runner.model
    test_set = build("dataset", cfg.finetune["test"])
    transform = evaluation_transform(test_set, cfg.finetune["data"].get("transform"),
                                     cfg.finetune.get("eval_transform") or cfg.get("eval_transform"))
    # a test sample may be many views (video: 5 clips × 3 crops); the batch is the config's
    metrics = {**evaluate_classifier(classifier.model, test_set, transform, int(cfg.finetune.get("test_batch_size", 256))),
               "checkpoint": None if checkpoint is None else str(checkpoint),
               "final_loss": float(runner.message_hub.get_scalar("train/loss").current()),
               "seconds": round(time.perf_counter() - started, 1)}
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(work_dir) / "metrics.json", metrics)
    return metrics
