"""Audio-visual evaluation: classification from the joint model and from each modality alone (a
frozen linear probe and k-NN, and fine-tuning), and audio↔video retrieval R@1/5/10.

Features, nothing masked: "joint" = [mean video token; mean audio token] of the clip encoded with
both modalities together; "audio" / "video" = the mean token of that modality encoded alone (the
same encoder, the other modality absent: what the joint model knows from one stream). Retrieval
ranks, for each clip's audio (alone), the videos (alone) of every test clip, and back (core's
:mod:`maekit.eval.retrieval`), on the model's ``retrieval_features``: AV-MAE's mean token of each
modality alone, MAViL's contrast space (the features its inter-modal term aligns, through its
projector when it has one).

Fine-tuning follows the reference's audio-visual head (scenic's MBT classifier head): one Linear
shared by the modalities gives per-modality logits of each modality's mean token (after a
LayerNorm); training minimises the mean of the per-modality cross-entropies, testing averages the
logits. MBT's bottleneck-token fusion is not built (see the README).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from maekit_audiovisual.model import MODALITIES, AudioVisualMAE

__all__ = ["FEATURE_KINDS", "av_features", "probe_report", "retrieval_report", "AudioVisualClassifier", "finetune",
           "av_eval_report", "frozen_view"]

#: the features classification is measured on
FEATURE_KINDS = ("joint", "audio", "video")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _loader(dataset: Dataset, transform: Any, batch_size: int, **options: Any) -> DataLoader:
    from maekit.data.views import TransformedView

    return DataLoader(TransformedView(dataset, transform) if transform is not None else dataset, batch_size=batch_size,
                      **options)


def _streams(batch: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    return {"inputs": batch["inputs"].to(device), "audio": batch["audio"].to(device)}


@torch.no_grad()
def av_features(model: AudioVisualMAE, dataset: Dataset, transform: Any = None, batch_size: int = 64,
                retrieval: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per clip of ``dataset`` (seen through ``transform``): the ``joint``, ``audio`` and ``video``
    features (module docstring), with ``retrieval`` also ``retrieval_audio`` and ``retrieval_video``
    (the model's ``retrieval_features``), and the labels."""
    model.eval()
    device = _device(model)
    kinds = FEATURE_KINDS + (tuple(f"retrieval_{m}" for m in MODALITIES) if retrieval else ())
    found: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    labels = []
    for batch in _loader(dataset, transform, batch_size):
        streams = _streams(batch, device)
        together = model.pooled(streams)
        found["joint"].append(torch.cat([together[m] for m in MODALITIES], dim=-1).float().cpu().numpy())
        for m in MODALITIES:
            found[m].append(model.pooled(streams, (m,))[m].float().cpu().numpy())
        if retrieval:
            for m, value in model.retrieval_features(streams).items():
                found[f"retrieval_{m}"].append(value.float().cpu().numpy())
        labels.append(np.asarray(batch["label"]))
    return {kind: np.concatenate(parts) for kind, parts in found.items()}, np.concatenate(labels)


def probe_report(train: tuple[dict[str, np.ndarray], np.ndarray], test: tuple[dict[str, np.ndarray], np.ndarray],
                 knn_k: int = 20) -> dict[str, float]:
    """Linear-probe and k-NN top-1 accuracy in percent (core's) per feature kind: ``probe/<kind>``,
    ``knn/<kind>``."""
    from maekit.eval.probe import knn_accuracy, linear_probe

    (train_x, train_y), (test_x, test_y) = train, test
    report = {}
    for kind in FEATURE_KINDS:
        report[f"probe/{kind}"] = 100.0 * linear_probe(train_x[kind], train_y, test_x[kind], test_y)
        report[f"knn/{kind}"] = 100.0 * knn_accuracy(train_x[kind], train_y, test_x[kind], test_y, k=knn_k)
    return report


def retrieval_report(features: Mapping[str, np.ndarray], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Audio→video and video→audio R@K, MdR, MnR over the clips whose features are given (each
    clip's own audio and video are the pair)."""
    from maekit.eval.retrieval import retrieval_metrics

    audio = F.normalize(torch.from_numpy(features["audio"]).float(), dim=-1)
    video = F.normalize(torch.from_numpy(features["video"]).float(), dim=-1)
    metrics = retrieval_metrics(audio @ video.t(), torch.arange(len(audio)), ks, ("audio_to_video", "video_to_audio"))
    return {f"retrieval/{key}": value for key, value in metrics.items() if not key.startswith("num_")} | {
        "retrieval/clips": len(audio)}


class AudioVisualClassifier(nn.Module):
    """A copy of a (pre-trained) audio-visual encoder with the classification head of the module
    docstring, reading the ``modalities`` given (both, or one alone)."""

    def __init__(self, model: AudioVisualMAE, num_classes: int, modalities: Sequence[str] = MODALITIES) -> None:
        super().__init__()
        unknown = sorted(set(modalities) - set(MODALITIES))
        if unknown or not modalities:
            raise ValueError(f"modalities must name video, audio or both, got {list(modalities)}")
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        self.patchifiers = copy.deepcopy(model.patchifiers)
        self.encoder = copy.deepcopy(model.encoder)
        dim = self.encoder.embed_dim
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)

    def per_modality_logits(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """(modalities, B, classes)."""
        fused = self.encoder({m: self.patchifiers[m](batch) for m in self.modalities}).fused
        return torch.stack([self.head(self.fc_norm(fused[m].mean(dim=1))) for m in self.modalities])

    def classify(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.per_modality_logits(batch).mean(dim=0)

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The mean over modalities of each one's cross-entropy."""
        logits = self.per_modality_logits(batch).float()
        labels = torch.as_tensor(batch["label"], device=logits.device)
        if (labels < 0).any():
            raise ValueError("fine-tuning needs labelled clips: some have no label (-1)")
        return torch.stack([F.cross_entropy(per, labels) for per in logits]).mean()


def finetune(model: AudioVisualMAE, train: Dataset, test: Dataset, num_classes: int, train_transform: Any,
             test_transform: Any, modalities: Sequence[str] = MODALITIES, iters: int = 300, batch_size: int = 32,
             lr: float = 1e-3, weight_decay: float = 0.05, seed: int = 0, log: Any = None) -> dict[str, float]:
    """Fine-tune a copy of the encoder with the head (module docstring): AdamW (0.9, 0.999), cosine
    learning rate, weight decay except on biases, norms and tokens (core's rule), ``iters`` steps of
    ``batch_size`` clips drawn without replacement per pass, seeded (clips, crops, order). Returns
    the test top-1 accuracy and the last loss."""
    from maekit.data.views import AugmentedView
    from maekit.engine.optim import no_weight_decay_names, takes_no_decay

    if iters < 1 or batch_size < 1:
        raise ValueError(f"fine-tuning needs iters >= 1 and batch_size >= 1, got {iters} and {batch_size}")
    torch.manual_seed(seed)
    classifier = AudioVisualClassifier(model, num_classes, modalities).to(_device(model))
    declared = no_weight_decay_names(classifier)
    named = list(classifier.named_parameters())
    groups = [{"params": [p for n, p in named if not takes_no_decay(n, p, declared)], "weight_decay": weight_decay},
              {"params": [p for n, p in named if takes_no_decay(n, p, declared)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iters)
    view = AugmentedView(train, train_transform, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    classifier.train()
    loss = torch.zeros(())
    for step in range(iters):
        if len(order) < batch_size:
            order += torch.randperm(len(train), generator=generator).tolist()
        picked, order = order[:batch_size], order[batch_size:]
        samples = [view[step * len(train) + i] for i in picked]  # a fresh virtual index: fresh clips and crops
        batch = {"inputs": torch.stack([s["inputs"] for s in samples]), "audio": torch.stack([s["audio"] for s in samples]),
                 "label": torch.tensor([int(s["label"]) for s in samples])}
        loss = classifier({**_streams(batch, _device(classifier)), "label": batch["label"]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if log is not None and (step + 1) % max(iters // 4, 1) == 0:
            log(f"fine-tuning {'+'.join(classifier.modalities)} {step + 1}/{iters}: loss {float(loss.detach()):.4f}")
    classifier.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in _loader(test, test_transform, 64):
            predicted = classifier.classify(_streams(batch, _device(classifier))).argmax(-1).cpu()
            labels = torch.as_tensor(batch["label"])
            correct, total = correct + int((predicted == labels).sum()), total + len(labels)
    return {"top1": 100.0 * correct / total, "final_loss": float(loss.detach())}


def frozen_view(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset config for frozen features: the centred clip (``train=False``), the audio's
    filterbank without training augmentation (``audio_mae_augment`` becomes ``audio_fbank`` with the
    same front end), one clip per video."""
    view = dict(spec, train=False)
    if int(view.get("test_clips", 1)) != 1:
        raise ValueError(f"av_eval reads one clip per video (its audio is one spectrogram); got test_clips="
                         f"{view['test_clips']} in dataset {view.get('type')!r}")
    audio = dict(view.get("audio") or {})
    if audio.get("type") == "audio_mae_augment":
        view["audio"] = {key: value for key, value in audio.items() if key not in ("gain", "freqm", "timem")} | {
            "type": "audio_fbank"}
    return view


SECTION_KEYS = {"train", "test", "batch_size", "ks", "knn_k", "finetune"}
FINETUNE_KEYS = {"iters", "batch_size", "lr", "weight_decay", "num_classes", "modalities"}


def av_eval_report(model: AudioVisualMAE, section: Mapping[str, Any], eval_transform: Any, train_transform: Any = None,
                   finetune_iters: int | None = None, seed: int = 0, log: Any = None) -> dict[str, Any]:
    """What a config's ``av_eval`` section asks for: probe and k-NN (joint, audio alone, video
    alone) and retrieval on ``test``; then, when fine-tuning is asked for (``finetune.iters`` or
    ``finetune_iters`` > 0), fine-tuning on ``train`` for each entry of ``finetune.modalities``
    (default: joint, audio, video)."""
    from maekit.registry import build

    unknown = sorted(set(section) - SECTION_KEYS)
    if unknown or "test" not in section or "train" not in section:
        raise ValueError(f"av_eval section: {'unknown keys ' + str(unknown) if unknown else 'needs train and test'} "
                         f"(keys: {', '.join(sorted(SECTION_KEYS))})")
    options = dict(section.get("finetune") or {})
    if sorted(set(options) - FINETUNE_KEYS):
        raise ValueError(f"av_eval.finetune: unknown keys {sorted(set(options) - FINETUNE_KEYS)} "
                         f"(keys: {', '.join(sorted(FINETUNE_KEYS))})")
    train = build("dataset", frozen_view(section["train"]))
    test = build("dataset", frozen_view(section["test"]))
    batch_size = int(section.get("batch_size", 64))
    train_features = av_features(model, train, eval_transform, batch_size)
    test_features = av_features(model, test, eval_transform, batch_size, retrieval=True)
    report: dict[str, Any] = {**probe_report(train_features, test_features, int(section.get("knn_k", 20))),
                              **retrieval_report({m: test_features[0][f"retrieval_{m}"] for m in MODALITIES},
                                                 tuple(section.get("ks", (1, 5, 10))))}
    configured = int(options.pop("iters", 0))
    iters = configured if finetune_iters is None else finetune_iters
    if iters > 0:
        if train_transform is None:
            raise ValueError("av_eval fine-tuning needs the config's data.transform (the clips' training transform)")
        num_classes = int(options.pop("num_classes", 0) or getattr(train, "num_classes", 0))
        if num_classes < 2:
            raise ValueError("av_eval.finetune needs num_classes (the training dataset names no classes)")
        runs = options.pop("modalities", ("joint", "audio", "video"))
        tuning_set = build("dataset", section["train"])
        for run in runs:
            modalities = MODALITIES if run == "joint" else (run,)
            result = finetune(model, tuning_set, test, num_classes, train_transform, eval_transform, modalities, iters,
                              seed=seed, log=log, **options)
            report[f"finetune/{run}"] = result["top1"]
        report["finetune_iters"] = iters
    return report
