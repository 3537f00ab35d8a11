"""Accuracy under corruptions, before and after test-time training, and the probe stage of TTT-MAE.

A config's ``ttt`` section holds the test-time settings (:class:`maekit.eval.test_time.TestTimeSettings`);
its ``ttt_eval`` section says what to test on: ``test`` (a dataset of clean images, corrupted here
by ``corruptions`` × ``severities``) or ``corrupted_root`` (a folder already corrupted in ImageNet-C's
layout ``<root>/<corruption>/<severity>/<class>/<image>``), ``limit`` (N images of each, spread evenly),
``clean`` (also test the uncorrupted set), ``seed`` (the corruptions' random draws), ``table``
(the severity constants: ``auto``, ``imagenet``, ``cifar``; see :func:`maekit_ttt.corruptions.corrupt`).
"""
from __future__ import annotations

import difflib
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from maekit.eval.test_time import TestTimeSettings, adapt_and_predict
from maekit.io.checkpoint import write_json
from maekit_ttt.corruptions import CORRUPTIONS
from maekit_ttt.data import CorruptedDataset

__all__ = ["EVAL_KEYS", "eval_options", "conditions_to_test", "condition_dataset", "chosen_indices", "evaluate_condition",
           "evaluate_under_corruptions", "load_for_test_time", "probe_config", "run_probe_stage"]

#: ImageNet-C's 19 corruption folders (15 benchmark + 4 held-out)
IMAGENET_C = list(CORRUPTIONS) + ["snow", "frost", "elastic_transform", "spatter"]
EVAL_KEYS = ("test", "corrupted_root", "corruptions", "severities", "table", "limit", "clean", "seed", "classes", "channels")


def eval_options(section: Mapping[str, Any] | None, where: str = "ttt_eval") -> dict[str, Any]:
    """The ``ttt_eval`` section checked: known keys, known corruptions, severities 1–5."""
    options = dict(section or {})
    for key in options:
        if key not in EVAL_KEYS:
            near = difflib.get_close_matches(key, EVAL_KEYS, n=1)
            raise ValueError(f"config {where}.{key}: unknown key" + (f" (did you mean {near[0]!r}?)" if near
                                                                     else f"; expected one of {', '.join(EVAL_KEYS)}"))
    if ("test" in options) == ("corrupted_root" in options):
        raise ValueError(f"config {where}: give either 'test' (clean images, corrupted here) or 'corrupted_root' "
                         f"(an ImageNet-C-style folder), not {'both' if 'test' in options else 'neither'}")
    for key, single in (("corruptions", str), ("severities", int)):  # one value for a list of one
        if isinstance(options.get(key), single) and not isinstance(options.get(key), bool):
            options[key] = [options[key]]
    if "corruptions" in options and not (isinstance(options["corruptions"], (list, tuple))
                                         and all(isinstance(c, str) for c in options["corruptions"])):
        raise ValueError(f"config {where}.corruptions: expected a list of corruption names, got {options['corruptions']!r}")
    if "severities" in options and not (isinstance(options["severities"], (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in options["severities"])):
        raise ValueError(f"config {where}.severities: expected a list of severities 1–5, got {options['severities']!r}")
    if not isinstance(options.get("clean", True), bool):
        raise ValueError(f"config {where}.clean: expected True or False, got {options['clean']!r}")
    if "corrupted_root" in options and "corruptions" not in options:  # the corruption folders it holds
        root = Path(options["corrupted_root"])
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in IMAGENET_C) if root.is_dir() else []
        if not found:
            raise ValueError(f"{root}: no ImageNet-C corruption folders (<root>/<corruption>/<severity>/<class>/<image>, "
                             f"corruption one of {', '.join(IMAGENET_C)})")
        options["corruptions"] = found
    if "corrupted_root" in options and "severities" not in options:  # the severity folders it holds
        root = Path(options["corrupted_root"])
        options["severities"] = sorted({int(p.name) for name in options["corruptions"] if (root / name).is_dir()
                                        for p in (root / name).iterdir() if p.name in ("1", "2", "3", "4", "5")}) or [1, 2, 3, 4, 5]
    options.setdefault("corruptions", list(CORRUPTIONS))
    options.setdefault("severities", [1, 2, 3, 4, 5])
    options["corruptions"] = list(dict.fromkeys(options["corruptions"]))  # a name given twice runs once
    options["severities"] = list(dict.fromkeys(options["severities"]))
    # a corrupted folder may hold every ImageNet-C corruption; only those written here can be made on the fly
    known = IMAGENET_C if "corrupted_root" in options else list(CORRUPTIONS)
    for name in options["corruptions"]:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            made = "" if "corrupted_root" in options or name not in IMAGENET_C else " can only be read from a corrupted_root folder;"
            raise ValueError(f"config {where}.corruptions: {name!r}{made or ' is unknown'}"
                             + (f" (did you mean {near[0]!r}?)" if near and not made else f"; known: {', '.join(known)}"))
    for severity in options["severities"]:
        if severity not in (1, 2, 3, 4, 5):
            raise ValueError(f"config {where}.severities: {severity!r} is not a severity (1–5)")
    if options.get("table", "auto") not in ("auto", "imagenet", "cifar"):
        raise ValueError(f"config {where}.table: expected 'auto', 'imagenet' or 'cifar', got {options['table']!r}")
    limit = options.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"config {where}.limit: expected a positive number of images, got {limit!r}")
    return options


def conditions_to_test(options: Mapping[str, Any]) -> tuple[list[tuple[str, int]], list[str]]:
    """(corruption, severity) pairs in order, ("clean", 0) first when asked for (clean images only),
    and the pairs a corrupted folder lacks (``corruption/severity``; an error when it has none)."""
    wanted = [(name, severity) for name in options["corruptions"] for severity in options["severities"]]
    if "corrupted_root" not in options:
        return ([("clean", 0)] if options.get("clean", True) else []) + wanted, []
    root = Path(options["corrupted_root"])
    present = [(n, s) for n, s in wanted if (root / n / str(s)).is_dir()]
    if not present:
        raise ValueError(f"{root}: none of the asked folders <corruption>/<severity> exist "
                         f"({', '.join(f'{n}/{s}' for n, s in wanted[:6])}{'...' if len(wanted) > 6 else ''})")
    return present, [f"{n}/{s}" for n, s in wanted if (n, s) not in present]


def condition_dataset(options: Mapping[str, Any], name: str, severity: int, clean_set: Any) -> Any:
    """The dataset of one condition: the clean test set, it corrupted on the fly, or a folder."""
    from maekit.registry import build

    if clean_set is not None:
        return clean_set if name == "clean" else CorruptedDataset(clean_set, name, severity, options.get("seed", 0),
                                                                   options.get("table", "auto"))
    folder = Path(options["corrupted_root"]) / name / str(severity)
    return build("dataset", dict(type="image_folder", root=str(folder), channels=options.get("channels", 3),
                                 **({"classes": options["classes"]} if options.get("classes") else {})))


def chosen_indices(size: int, limit: int | None) -> list[int]:
    """Every index, or ``limit`` of them spread evenly over the set (a class-sorted folder keeps every class)."""
    if limit is None or limit >= size:
        return list(range(size))
    return sorted({int(round(i * (size - 1) / max(limit - 1, 1))) for i in range(limit)})


def _check_labels(dataset: Any, where: str, num_classes: int | None) -> None:
    classes = getattr(dataset, "classes", None)
    if classes is not None and not classes:
        raise ValueError(f"{where}: no class folders (<class>/<image>): test-time evaluation needs labelled images")
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise ValueError(f"{where}: {len(classes)} class folders, the model predicts {num_classes} classes; the "
                         f"folders must be the model's classes (ttt_eval.classes names them in the model's order)")


def evaluate_condition(model: torch.nn.Module, dataset: Any, indices: list[int], settings: TestTimeSettings,
                       transform: Any, device: torch.device, chunk: int = 256) -> dict[str, Any]:
    """Accuracy per step and loss per step over ``indices`` of ``dataset``, streamed ``chunk`` images
    at a time (memory stays flat on ImageNet-C's 50,000 images per condition). An online run goes
    through the images in this order (a class-sorted folder: class by class) and starts afresh
    for every condition."""
    correct = torch.zeros(settings.steps + 1)
    loss_sum = torch.zeros(settings.steps)
    online_state = None
    for first in range(0, len(indices), chunk):
        part = indices[first:first + chunk]
        samples = [dataset[i] for i in part]
        labels = torch.tensor([int(sample["label"]) for sample in samples])
        if (labels < 0).any():
            raise ValueError(f"sample {part[int((labels < 0).nonzero()[0])]}: no label; test-time evaluation needs labels")
        images = torch.stack([transform(sample["inputs"]) for sample in samples]).to(device)
        outcome = adapt_and_predict(model, images, settings, part, online_state=online_state)
        if int(labels.max()) >= outcome.logits.shape[-1]:
            raise ValueError(f"label {int(labels.max())} is outside the model's {outcome.logits.shape[-1]} classes")
        online_state = outcome.online_state
        correct += (outcome.logits.argmax(-1) == labels.view(-1, 1)).float().sum(0)
        loss_sum += outcome.losses.sum(0)
    accuracy = [float(v) for v in correct / len(indices)]
    return {"before": accuracy[0], "after": accuracy[-1], "accuracy_per_step": accuracy,
            "loss_per_step": [float(v) for v in loss_sum / len(indices)], "images": len(indices)}


def evaluate_under_corruptions(model: torch.nn.Module, options: Mapping[str, Any], settings: TestTimeSettings,
                               transform: Any, log: Callable[[str], Any] = print, device: str | torch.device | None = None,
                               num_classes: int | None = None, partial: str | Path | None = None,
                               about: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Accuracy per (corruption, severity) without adaptation (step 0) and after every test-time
    step, and the self-supervised loss per step; the means over the corrupted conditions. The
    model runs on ``device`` (default: CUDA when present). ``partial``: a JSON file rewritten
    after every condition (``"complete": false`` until the end), so a long run stopped midway
    keeps what it measured; ``about`` (checkpoint, config) is written into it."""
    from maekit.registry import build

    started = time.perf_counter()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    clean_set = build("dataset", options["test"]) if "test" in options else None
    conditions, absent = conditions_to_test(options)
    if absent:
        log(f"not in {options['corrupted_root']}, so not tested: {', '.join(absent)}")
    if clean_set is None and options.get("clean"):
        log("clean: a corrupted folder has no clean images; the clean condition is not tested")
    results: dict[str, Any] = {}

    def report(complete: bool) -> dict[str, Any]:
        corrupted = [v for k, v in results.items() if k != "clean"]
        return {**(about or {}), "complete": complete, "conditions": results,
                "mean_before": sum(v["before"] for v in corrupted) / max(len(corrupted), 1),
                "mean_after": sum(v["after"] for v in corrupted) / max(len(corrupted), 1),
                "absent_conditions": absent, "settings": dict(settings.__dict__), "device": str(device),
                "seconds": round(time.perf_counter() - started, 1)}

    for name, severity in conditions:
        key = name if name == "clean" else f"{name}/{severity}"
        dataset = condition_dataset(options, name, severity, clean_set)
        _check_labels(dataset, str(options.get("corrupted_root", "ttt_eval.test")) + ("" if clean_set else f"/{key}"),
                      num_classes)
        results[key] = evaluate_condition(model, dataset, chosen_indices(len(dataset), options.get("limit")), settings,
                                          transform, device)
        log(f"{key}: accuracy {results[key]['before']:.3f} without adaptation, {results[key]['after']:.3f} after "
            f"{settings.steps} steps")
        if partial is not None:  # the means cover the conditions done so far until "complete" is true
            write_report(report(complete=False), partial)
    return report(complete=True)


def load_for_test_time(model_cfg: Mapping[str, Any], checkpoint: str | None) -> torch.nn.Module:
    """The trained model for test-time evaluation: TTT-MAE through its own loader (decoder and
    classifier both required), any other method through core's; no weights at all is an error."""
    from maekit.eval.probe import load_trained_model
    from maekit.registry import build
    from maekit_ttt.ttt_mae import load_mae_with_decoder

    weights = checkpoint or model_cfg.get("checkpoint")
    if not weights:
        raise ValueError("test-time evaluation needs trained weights: give --checkpoint (or model.checkpoint)")
    if model_cfg.get("type") != "ttt_mae":
        if not isinstance(weights, str):
            raise ValueError(f"{model_cfg.get('type')}: one checkpoint file is read, got {weights!r}")
        return load_trained_model({k: v for k, v in model_cfg.items() if k != "checkpoint"}, weights)
    model = build("model", {**model_cfg, "checkpoint": None, "stage": "pretrain"})
    load_mae_with_decoder(model, weights, require_classifier=True)
    return model.eval()


def probe_config(cfg: Any, checkpoint: str | None) -> Any:
    """The training config of TTT-MAE's probe stage: the method's model with ``stage="probe"`` and the
    pre-trained MAE loaded, the ``ttt_probe`` section's data and schedule."""
    from mmengine.config import Config

    section = cfg.get("ttt_probe")
    if cfg.model.get("type") != "ttt_mae":
        raise ValueError(f"config {cfg.filename}: the probe stage is TTT-MAE's (model type ttt_mae), got "
                         f"{cfg.model.get('type')!r} (TTT trains jointly: maekit train)")
    if not section or "data" not in section or "schedule" not in section:
        raise ValueError(f"config {cfg.filename}: no 'ttt_probe' section with 'data' and 'schedule' (the classifier's training)")
    if checkpoint is None:
        raise ValueError("the probe stage reads a pre-trained MAE: give --checkpoint (a maekit train checkpoint with the decoder)")
    return Config(dict(model={**cfg.model, "stage": "probe", "checkpoint": str(checkpoint)}, data=section["data"],
                       schedule=section["schedule"], seed=cfg.get("seed", 0), log_interval=cfg.get("log_interval", 50),
                       checkpoint_interval=section["schedule"].get("max_iters", 1)))


def run_probe_stage(cfg: Any, checkpoint: str | None, work_dir: str | Path, seed: int | None = None,
                    device: str | None = None, launcher: str = "none") -> Path:
    """Train TTT-MAE's classifier on the frozen encoder; returns the final checkpoint (f, g and h)."""
    from maekit.engine import train

    probe_cfg = probe_config(cfg, checkpoint)
    train(probe_cfg, work_dir, device=device, seed=seed, launcher=launcher)
    return Path(work_dir) / f"iter_{probe_cfg.schedule.max_iters}.pth"


def write_report(metrics: Mapping[str, Any], path: str | Path) -> Path:
    return write_json(path, metrics)
