"""``maekit au-eval``'s body: train an AU detector on each fold's training subjects (the training
engine: checkpoints and logs), then per-AU F1 on the fold's test subjects under every
evaluation condition (clean, random patches, blocks), and the mean over folds.

The config's ``au`` section: ``data`` (dataset, transform, batch_size; its dataset takes ``fold``),
``test`` (dataset), ``eval_transform``, ``head`` (AUQueryHead's width, depth, num_heads),
``schedule`` (with ``layer_decay``), ``folds`` (default (1, 2, 3)), ``conditions`` (name → occlusion
spec or None; default :data:`DEFAULT_CONDITIONS`), ``train_occlusions`` (default: those conditions'
occlusions), ``occlusion_threshold``, ``node_weight``, ``edge_weight``, ``freeze_encoder`` (the
occlusion student's; default True), ``drop_path_rate``, ``test_batch_size``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from maekit.io.checkpoint import write_json
from maekit_face.aus import au_weights
from maekit_face.occlusion import build_occlusion

__all__ = ["DEFAULT_CONDITIONS", "evaluate_conditions", "au_train_config", "run_au_eval", "format_tables"]

#: The occlusion settings of the method note: clean, random patches (25/50/75 %), blocks (¼, ½ side).
DEFAULT_CONDITIONS: dict[str, dict | None] = {
    "clean": None,
    "patches_25": dict(type="patch", ratio=0.25), "patches_50": dict(type="patch", ratio=0.5),
    "patches_75": dict(type="patch", ratio=0.75),
    "block_25": dict(type="block", side=0.25), "block_50": dict(type="block", side=0.5),
}


@torch.no_grad()
def evaluate_conditions(detector: Any, dataset: Any, transform: Any, conditions: Mapping[str, dict | None],
                        batch_size: int = 256, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per condition, the F1 table (:func:`~maekit_face.aus.f1_table`) over every test frame. The
    occlusions are drawn from a generator seeded by ``seed``, the same for every detector."""
    from torch.utils.data import DataLoader

    from maekit.data.views import TransformedView

    detector.eval()
    device = next(detector.parameters()).device
    loader = DataLoader(TransformedView(dataset, transform), batch_size=batch_size)
    tables = {}
    for name, spec in conditions.items():
        occlusion = build_occlusion(spec)
        generator = torch.Generator().manual_seed(seed)
        logits, labels = [], []
        for batch in loader:
            images = batch["inputs"].to(device)
            occluded = None if occlusion is None else occlusion(images.shape[0], images.shape[-2], images.shape[-1],
                                                                 detector.patch_size, generator)
            logits.append(detector.classify({"inputs": images}, occluded).float().cpu())
            labels.append(torch.as_tensor(batch["label"]))
        tables[name] = detector.metrics(torch.cat(logits), torch.cat(labels))
    return tables


def with_fold(dataset_cfg: Mapping[str, Any], fold: int) -> dict[str, Any]:
    """A dataset config set to ``fold`` (every AU dataset here takes one)."""
    return {**dataset_cfg, "fold": int(fold)}


def conditions(section: Mapping[str, Any]) -> dict[str, dict | None]:
    """The section's evaluation conditions (default :data:`DEFAULT_CONDITIONS`), each checked."""
    chosen = dict(section.get("conditions", DEFAULT_CONDITIONS))
    for name, spec in chosen.items():
        try:
            build_occlusion(spec)
        except ValueError as error:
            raise ValueError(f"au.conditions.{name}: {error}") from None
    return chosen


def au_train_config(cfg: Any, section: Mapping[str, Any], fold: int, checkpoint: str | None, method: str,
                    teacher: str | None, aus: Sequence[int], weights: Sequence[float],
                    chosen: Mapping[str, dict | None]) -> Any:
    """The training config of one fold's detector (the engine's config: model, data, schedule);
    ``chosen``: the checked evaluation conditions, whose occlusions train the student by default."""
    from mmengine.config import Config

    from maekit.eval.finetune import layer_decay_schedule

    schedule = layer_decay_schedule(section.get("schedule", {}))
    data = dict(section["data"])
    data["dataset"] = with_fold(data["dataset"], fold)
    model = dict(model=cfg.model, aus=list(aus), checkpoint=checkpoint, head=dict(section.get("head", {})),
                 au_weights=[float(w) for w in weights],
                 train_occlusions=list(section.get("train_occlusions", [s for s in chosen.values() if s])),
                 occlusion_threshold=float(section.get("occlusion_threshold", 0.5)),
                 node_weight=float(section.get("node_weight", 1.0)), edge_weight=float(section.get("edge_weight", 1.0)),
                 drop_path_rate=float(section.get("drop_path_rate", 0.1)))
    if method == "occlusion":  # the method of Jiang et al., registered as au_occlusion
        model.update(type="au_occlusion", teacher_checkpoint=teacher,
                     freeze_encoder=bool(section.get("freeze_encoder", True)))
    else:
        model.update(type="au_detector", method=method)
    return Config(dict(
        model=model,
        data=data, schedule=schedule, seed=cfg.get("seed", 0), log_interval=cfg.get("log_interval", 50),
        log_level=cfg.get("log_level", "INFO"), checkpoint_interval=schedule.get("max_iters", 1)))


def run_au_eval(cfg: Any, checkpoint: str | None, work_dir: str | Path, method: str = "finetune",
                teacher: str | None = None, folds: Sequence[int] | None = None, device: str | None = None,
                seed: int | None = None, log: Any = print) -> dict[str, Any]:
    """Train and evaluate one detector per fold (``work_dir/fold<k>``); ``teacher`` may hold
    ``{fold}`` (each fold's own clean-face teacher). Returns and writes ``metrics.json``: per fold
    and condition the F1 table, and per condition the mean over the folds."""
    from maekit.data.views import evaluation_transform
    from maekit.engine import train
    from maekit.registry import build

    section = cfg.get("au")
    if not section or "data" not in section or "test" not in section:
        raise ValueError(f"config {cfg.filename} has no 'au' section with 'data' (dataset, transform, batch_size) and "
                         f"'test'")
    folds = tuple(folds or section.get("folds", (1, 2, 3)))
    if teacher is not None and len(folds) > 1 and "{fold}" not in str(teacher):
        raise ValueError(f"--teacher {teacher} is one detector for folds {list(folds)}: a teacher trained on another "
                         f"fold has seen this fold's test subjects; give a path with {{fold}} (each fold's own)")
    chosen = conditions(section)
    started, work_dir = time.perf_counter(), Path(work_dir)
    per_fold: dict[str, Any] = {}
    for fold in folds:
        train_set = build("dataset", with_fold(section["data"]["dataset"], fold))
        test_set = build("dataset", with_fold(section["test"], fold))
        fold_teacher = None if teacher is None else str(teacher).replace("{fold}", str(fold))
        config = au_train_config(cfg, section, fold, checkpoint, method, fold_teacher, train_set.aus,
                                 au_weights(train_set.labels), chosen)
        runner = train(config, work_dir / f"fold{fold}", device=device, seed=seed)
        detector = runner.model.module if hasattr(runner.model, "module") else runner.model
        transform = evaluation_transform(test_set, section["data"].get("transform"), section.get("eval_transform"))
        tables = evaluate_conditions(detector.model, test_set, transform, chosen,
                                     int(section.get("test_batch_size", 256)), seed=fold)
        per_fold[f"fold{fold}"] = {**tables, "train_frames": len(train_set), "test_frames": len(test_set),
                                   "checkpoint": str(work_dir / f"fold{fold}" / f"iter_{config.schedule.max_iters}.pth")}
        log(f"fold {fold}: " + ", ".join(f"{name} avg F1 {table['avg_f1']:.1f}" for name, table in tables.items()))
    mean = {name: round(float(np.mean([per_fold[f"fold{k}"][name]["avg_f1"] for k in folds])), 2) for name in chosen}
    metrics = {"method": method, "checkpoint": checkpoint, "teacher": teacher, "folds": list(folds),
               "aus": list(train_set.aus), "avg_f1_mean_over_folds": mean, "per_fold": per_fold,
               "seconds": round(time.perf_counter() - started, 1)}
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(work_dir / "metrics.json", metrics)
    return metrics


def format_tables(metrics: dict[str, Any]) -> str:
    """The per-AU F1 tables as text: one row per fold and condition, then the fold means."""
    aus = [f"AU{au}" for au in metrics["aus"]]
    lines = ["fold   condition      " + " ".join(f"{name:>6}" for name in [*aus, "avg"])]
    for fold, tables in metrics["per_fold"].items():
        for condition in metrics["avg_f1_mean_over_folds"]:
            row = tables[condition]
            lines.append(f"{fold:<6} {condition:<14} " + " ".join(f"{row[name]:6.1f}" for name in [*aus, "avg_f1"]))
    means = metrics["avg_f1_mean_over_folds"]
    lines.append("mean avg F1 over folds: " + ", ".join(f"{c} {v:.1f}" for c, v in means.items()))
    return "\n".join(lines)
