"""``maekit demo face`` and ``maekit demo mcm``: pre-train on honest demo data, then AU detection
on the procedural faces (exact AU-like labels: a pipeline check, not a BP4D claim) from the
pre-trained encoder and from the same architecture at random init, clean and occluded.

- face: MAE pre-trained on scikit-image's 100 real LFW faces + the unlabelled procedural faces of
  the training subjects; the fine-tuned detector (clean faces, occluded pixels zeroed at test) and
  the occlusion-robust student (encoder on the visible patches, distilled from the
  pre-trained fine-tuned detector as teacher).
- mcm: MCM pre-trained on the 5-channel procedural faces; the detector fine-tuned on RGB alone.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maekit.io.checkpoint import write_json

__all__ = ["run_face_demo", "run_mcm_demo", "compare_inits", "occlusion_picture"]


def compare_inits(cfg: Any, checkpoint: Path, out_dir: Path, method: str, seed: int, log: Any,
                  teacher: str | None = None) -> dict[str, Any]:
    """``maekit au-eval``'s run from the pre-trained checkpoint and from random init (same seed):
    ``{"pretrained": metrics, "random_init": metrics}``."""
    from maekit_face.evaluate import run_au_eval

    runs = {}
    for name, weights in (("pretrained", str(checkpoint)), ("random_init", None)):
        torch.manual_seed(seed)
        log(f"AU detection ({method}) from the {name.replace('_', ' ')} encoder")
        runs[name] = run_au_eval(cfg, weights, out_dir / f"au_{method}_{name}", method, teacher, device="cpu",
                                 seed=seed, log=log)
    return runs


def summarise(runs: dict[str, Any], method: str) -> dict[str, Any]:
    """Flat figures: ``<method>_<condition>_avg_f1_<init>`` and whether pre-training beat random init."""
    figures: dict[str, Any] = {}
    for init, metrics in runs.items():
        for condition, value in metrics["avg_f1_mean_over_folds"].items():
            figures[f"{method}_{condition}_avg_f1_{init}"] = value
        figures[f"{method}_per_fold_{init}"] = metrics["per_fold"]
    conditions = runs["pretrained"]["avg_f1_mean_over_folds"]
    figures[f"{method}_beats_random_init"] = {
        c: conditions[c] > runs["random_init"]["avg_f1_mean_over_folds"][c] for c in conditions}
    return figures


def comparison_line(metrics: dict[str, Any], method: str, runs: dict[str, Any]) -> str:
    """One log line: ``method``'s avg F1 per condition, pre-trained vs random init."""
    return f"{method}: avg F1 pre-trained vs random init — " + ", ".join(
        f"{c} {metrics[f'{method}_{c}_avg_f1_pretrained']:.1f} vs {metrics[f'{method}_{c}_avg_f1_random_init']:.1f}"
        for c in runs["pretrained"]["avg_f1_mean_over_folds"])


@torch.no_grad()
def occlusion_picture(model: Any, images: torch.Tensor, mean: Any, std: Any, path: Path, seed: int = 0) -> Path:
    """Per face: the face | random patches (50 %) | a block (½ side), occluded pixels black and
    the tokens the student drops (over half covered) outlined grey."""
    from maekit.eval.visualize import PanelTitles, denormalised_panels, save_grid
    from maekit.nn.patchify import unpatchify
    from maekit_face.occlusion import BlockOcclusion, PatchOcclusion, occluded_tokens

    patch = model.patchifier.patch_size
    columns = [denormalised_panels(images, mean, std)]
    for occlusion in (PatchOcclusion(0.5), BlockOcclusion(0.5)):
        occluded = occlusion(images.shape[0], images.shape[-2], images.shape[-1], patch[0],
                             torch.Generator().manual_seed(seed))
        hidden = occluded_tokens(occluded, patch).float()[:, :, None].expand(-1, -1, patch[0] * patch[1])
        grid = (images.shape[-2] // patch[0], images.shape[-1] // patch[1])
        dropped = unpatchify(hidden, grid, patch).expand_as(images)
        shown = images.masked_fill(occluded[:, None], float("-inf"))  # black after denormalising and clamping
        columns.append(denormalised_panels(torch.where(dropped.bool() & ~occluded[:, None], images * 0.5, shown), mean, std))
    rows = [list(row) for row in zip(*columns)]
    return save_grid(rows, path, scale=4, titles=PanelTitles(columns=("face", "patches 50%", "block 1/2")))


def all_present_f1(cfg: Any) -> float:
    """The avg F1 of calling every AU present on every test frame of the first fold: the floor a
    detector must clear to have learned anything (F1 rewards recall; this needs no model)."""
    from maekit.registry import build
    from maekit_face.aus import f1_table

    labels = build("dataset", {**cfg.au["test"], "fold": cfg.au.get("folds", (1,))[0]}).labels
    return f1_table(np.ones(labels.shape), labels, range(labels.shape[1]))["avg_f1"]


def _shorten(au_iters: int | None) -> dict[str, Any]:
    return {} if au_iters is None else {"au.schedule.max_iters": au_iters, "au.schedule.warmup_iters": au_iters // 10}


def _test_faces(cfg: Any, count: int = 8) -> tuple[torch.Tensor, Any]:
    from maekit.data.views import evaluation_transform
    from maekit.registry import build

    test_set = build("dataset", {**cfg.au["test"], "fold": cfg.au.get("folds", (1,))[0]})
    transform = evaluation_transform(test_set, cfg.au["data"].get("transform"), cfg.au.get("eval_transform"))
    return torch.stack([transform(test_set[i]["inputs"]) for i in range(count)]), transform


def run_face_demo(out_dir: str | Path, config: str = "face_mae_demo", max_iters: int | None = None, seed: int = 0,
                  amp: str = "off", log: Any = print, au_iters: int | None = None) -> dict[str, Any]:
    """MAE pre-training, then fine-tuned and occlusion-robust AU detection vs random init (module
    docstring); writes ``metrics.json``, ``reconstructions.png`` and ``occlusions.png``.
    ``au_iters`` shortens each detector's training (tests)."""
    from maekit.data.views import default_mean_std
    from maekit.eval.demo import pretrain
    from maekit.eval.probe import load_trained_model
    from maekit.eval.visualize import save_panels

    started, out_dir = time.perf_counter(), Path(out_dir)
    cfg, final_loss, checkpoint = pretrain(out_dir, config, max_iters, seed, amp, _shorten(au_iters))
    finetuned = compare_inits(cfg, checkpoint, out_dir, "finetune", seed, log)
    iters = int(cfg.au.schedule.max_iters)
    teacher = str(out_dir / "au_finetune_pretrained" / "fold{fold}" / f"iter_{iters}.pth")
    students = compare_inits(cfg, checkpoint, out_dir, "occlusion", seed, log, teacher=teacher)

    model = load_trained_model(cfg.model, checkpoint)
    faces, transform = _test_faces(cfg)
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    if mean is None:
        mean, std = default_mean_std(faces.shape[1])
    metrics: dict[str, Any] = {
        **summarise(finetuned, "finetune"), **summarise(students, "occlusion"),
        "all_present_avg_f1": all_present_f1(cfg),
        "teacher": "the detector fine-tuned from the pre-trained encoder on clean faces (same fold)",
        "data": "pre-training: 100 real LFW faces (scikit-image) + unlabelled procedural faces of the training "
                "subjects; AU figures: procedural faces with exact labels (a pipeline check, not BP4D)",
        "final_loss": final_loss, "iterations": int(cfg.schedule.max_iters), "au_iterations": iters,
        "checkpoint": str(checkpoint), "config": config, "seed": seed,
        "reconstructions": str(save_panels(model, faces, mean, std, out_dir / "reconstructions.png", seed=seed)),
        "occlusions": str(occlusion_picture(model, faces, mean, std, out_dir / "occlusions.png", seed)),
        "seconds": round(time.perf_counter() - started, 1)}
    write_json(out_dir / "metrics.json", metrics)
    for method, runs in (("finetune", finetuned), ("occlusion", students)):
        log(comparison_line(metrics, method, runs))
    return metrics


def run_mcm_demo(out_dir: str | Path, config: str = "mcm_demo", max_iters: int | None = None, seed: int = 0,
                 amp: str = "off", log: Any = print, au_iters: int | None = None) -> dict[str, Any]:
    """MCM pre-training on the 5-channel procedural faces, then the RGB-only detector fine-tuned
    from it vs random init; writes ``metrics.json`` and ``reconstructions.png`` (RGB, the mixed and
    masked input, and each modality rebuilt)."""
    from maekit.data.views import default_mean_std
    from maekit.eval.demo import pretrain
    from maekit.eval.probe import load_trained_model
    from maekit.eval.visualize import save_grid
    from maekit.registry import build

    started, out_dir = time.perf_counter(), Path(out_dir)
    cfg, final_loss, checkpoint = pretrain(out_dir, config, max_iters, seed, amp, _shorten(au_iters))
    finetuned = compare_inits(cfg, checkpoint, out_dir, "finetune", seed, log)
    model = load_trained_model(cfg.model, checkpoint)
    fused = build("dataset", {**cfg.data.dataset, "split": "test"})
    view = build("transform", {**cfg.data.transform, "train": False})
    faces = torch.stack([view(fused[i]["inputs"]) for i in range(8)])
    mean, std = default_mean_std(5)
    picture = save_grid(model.panels(faces, mean, std, seed), out_dir / "reconstructions.png", scale=4,
                        titles=model.panel_titles())
    metrics = {**summarise(finetuned, "finetune"), "all_present_avg_f1": all_present_f1(cfg), "final_loss": final_loss, "iterations": int(cfg.schedule.max_iters),
               "au_iterations": int(cfg.au.schedule.max_iters), "checkpoint": str(checkpoint), "config": config,
               "seed": seed, "reconstructions": str(picture),
               "data": "pre-training: 5-channel procedural faces (RGB, depth, thermal) of the training subjects, "
                       "unlabelled; AU figures: RGB procedural faces with exact labels (a pipeline check)",
               "seconds": round(time.perf_counter() - started, 1)}
    write_json(out_dir / "metrics.json", metrics)
    log("mcm " + comparison_line(metrics, "finetune", finetuned))
    return metrics
