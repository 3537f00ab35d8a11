"""Accuracy under corruptions, before and after test-time training, and the probe stage of TTT-MAE.

A config's ``ttt`` section holds the test-time settings (:class:`maekit.eval.test_time.TestTimeSettings`);
its ``ttt_eval`` section says what to test on: ``test`` (a dataset of clean images, corrupted here
by ``corruptions`` × ``severities``) or ``corrupted_root`` (a folder already corrupted in ImageNet-C's
layout ``<root>/<corruption>/<severity>/<class>/<image>``), ``limit`` (the first N images of each),
``clean`` (also test the uncorrupted set), ``seed`` (the corruptions' random draws), ``table``
(the severity constants: ``auto``, ``imagenet``, ``cifar``; see :func:`maekit_ttt.corruptions.corrupt`).
"""
from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from maekit.eval.test_time import TestTimeSettings, adapt_and_predict
from maekit.io.checkpoint import write_bytes
from maekit_ttt.corruptions import CORRUPTIONS
from maekit_ttt.data import CorruptedDataset

__all__ = ["EVAL_KEYS", "eval_options", "conditions_to_test", "evaluate_under_corruptions", "probe_config", "run_probe_stage"]

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
    if "corrupted_root" in options and "corruptions" not in options:  # the corruption folders it holds
        root = Path(options["corrupted_root"])
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in IMAGENET_C) if root.is_dir() else []
        if not found:
            raise ValueError(f"{root}: no ImageNet-C corruption folders (<root>/<corruption>/<severity>/<class>/<image>, "
                             f"corruption one of {', '.join(IMAGENET_C)})")
        options["corruptions"] = found
    options.setdefault("corruptions", list(CORRUPTIONS))
    options.setdefault("severities", [1, 2, 3, 4, 5])
    if isinstance(options["corruptions"], str):
        options["corruptions"] = [options["corruptions"]]
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
    if limit is not None and (not isinstance(limit, int) or limit < 1):
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


def _condition_images(options: Mapping[str, Any], name: str, severity: int, transform: Any,
                      clean_set: Any) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The normalised images, labels and test indices of one condition."""
    from maekit.registry import build

    if clean_set is not None:
        dataset = clean_set if name == "clean" else CorruptedDataset(clean_set, name, severity, options.get("seed", 0),
                                                                      options.get("table", "auto"))
    else:
        folder = Path(options["corrupted_root"]) / name / str(severity)
        dataset = build("dataset", dict(type="image_folder", root=str(folder), channels=options.get("channels", 3),
                                        **({"classes": options["classes"]} if options.get("classes") else {})))
    count = len(dataset) if options.get("limit") is None else min(options["limit"], len(dataset))
    samples = [dataset[i] for i in range(count)]
    return (torch.stack([transform(s["inputs"]) for s in samples]), torch.tensor([int(s["label"]) for s in samples]),
            list(range(count)))


def evaluate_under_corruptions(model: torch.nn.Module, options: Mapping[str, Any], settings: TestTimeSettings,
                               transform: Any, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Accuracy per (corruption, severity) without adaptation (step 0) and after every test-time
    step, and the self-supervised loss per step; the means over the corrupted conditions."""
    from maekit.registry import build

    started = time.perf_counter()
    clean_set = build("dataset", options["test"]) if "test" in options else None
    results: dict[str, Any] = {}
    conditions, absent = conditions_to_test(options)
    if absent:
        log(f"not in {options['corrupted_root']}, so not tested: {', '.join(absent)}")
    for name, severity in conditions:
        images, labels, indices = _condition_images(options, name, severity, transform, clean_set)
        outcome = adapt_and_predict(model, images, settings, indices)
        accuracy = outcome.accuracy_per_step(labels)
        key = name if name == "clean" else f"{name}/{severity}"
        results[key] = {"before": accuracy[0], "after": accuracy[-1], "accuracy_per_step": accuracy,
                        "loss_per_step": outcome.loss_per_step(), "images": len(labels)}
        log(f"{key}: accuracy {accuracy[0]:.3f} without adaptation, {accuracy[-1]:.3f} after {settings.steps} steps")
    corrupted = [v for k, v in results.items() if k != "clean"]
    summary = {"mean_before": sum(v["before"] for v in corrupted) / max(len(corrupted), 1),
               "mean_after": sum(v["after"] for v in corrupted) / max(len(corrupted), 1)}
    return {"conditions": results, **summary, "absent_conditions": absent, "settings": settings.__dict__ | {"trainable": settings.trainable},
            "seconds": round(time.perf_counter() - started, 1)}


def probe_config(cfg: Any, checkpoint: str | None) -> Any:
    """The training config of TTT-MAE's probe stage: the method's model with ``stage="probe"`` and the
    pre-trained MAE loaded, the ``ttt_probe`` section's data and schedule."""
    from mmengine.config import Config

    section = cfg.get("ttt_probe")
    if not section or "data" not in section or "schedule" not in section:
        raise ValueError(f"config {cfg.filename}: no 'ttt_probe' section with 'data' and 'schedule' (the classifier's training)")
    if cfg.model.get("type") != "ttt_mae":
        raise ValueError(f"config {cfg.filename}: the probe stage is TTT-MAE's (model type ttt_mae), got {cfg.model.get('type')!r}")
    if checkpoint is None:
        raise ValueError("the probe stage reads a pre-trained MAE: give --checkpoint (a maekit train checkpoint with the decoder)")
    return Config(dict(model={**cfg.model, "stage": "probe", "checkpoint": str(checkpoint)}, data=section["data"],
                       schedule=section["schedule"], seed=cfg.get("seed", 0), log_interval=cfg.get("log_interval", 50),
                       checkpoint_interval=section["schedule"].get("max_iters", 1)))


def run_probe_stage(cfg: Any, checkpoint: str | None, work_dir: str | Path, seed: int | None = None,
                    device: str | None = None) -> Path:
    """Train TTT-MAE's classifier on the frozen encoder; returns the final checkpoint (f, g and h)."""
    from maekit.engine import train

    probe_cfg = probe_config(cfg, checkpoint)
    train(probe_cfg, work_dir, device=device, seed=seed)
    return Path(work_dir) / f"iter_{probe_cfg.schedule.max_iters}.pth"


def write_report(metrics: Mapping[str, Any], path: str | Path) -> Path:
    return write_bytes(path, json.dumps(metrics, indent=2).encode())
