"""Text→video and video→text retrieval: R@1/5/10, median and mean rank; zero-shot from the
contrastive features and after fine-tuning them with SimVTP's contrastive loss.

The metrics are core's (:mod:`maekit.eval.retrieval`): a text's match is its own video; a
video's rank is the best rank of its captions among all captions.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from maekit.eval.retrieval import ranks_of
from maekit.eval.retrieval import retrieval_metrics as core_retrieval_metrics

__all__ = ["retrieval_metrics", "ranks_of", "embed_videos", "embed_captions", "evaluate_retrieval", "finetune_retrieval",
           "retrieval_report", "ensure_vocabulary"]


def retrieval_metrics(similarity: torch.Tensor, video_of_text: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Both directions' R@K, MdR and MnR (core's :func:`~maekit.eval.retrieval.retrieval_metrics`)
    for a texts × videos similarity, with the counts named for videos and captions."""
    metrics = core_retrieval_metrics(similarity, video_of_text, ks, ("text_to_video", "video_to_text"))
    return {**{k: v for k, v in metrics.items() if not k.startswith("num_")},
            "num_videos": metrics["num_candidates"], "num_captions": metrics["num_queries"]}


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def embed_videos(model: Any, dataset: Dataset, transform: Any = None, batch_size: int = 32) -> torch.Tensor:
    """Unit video features (videos × D) of every video of ``dataset``: of its evaluation clip, or
    with several test views (clips × crops: inputs B×V×C×T×H×W) the mean of the views' features,
    then unit length, as SimVTP's test averages its 3 clips × 3 crops."""
    from maekit.data.views import TransformedView

    model.eval()
    view = TransformedView(dataset, transform) if transform is not None else dataset
    features, served = [], []
    for batch in DataLoader(view, batch_size=batch_size, collate_fn=_clips_only):
        clips = batch["inputs"].to(_device(model))
        if clips.dim() == 6:  # views of each video: encode them all, average per video
            features.append(model.encode_video(clips.flatten(0, 1)).float().cpu().unflatten(0, clips.shape[:2]).mean(1))
        else:
            features.append(model.encode_video(clips).float().cpu())
        served.append(batch["label"])
    # a dataset told to skip unreadable videos serves the next one in place of each: a gallery
    # would then hold a duplicate where the unreadable one's captions point
    substituted = torch.cat(served) != torch.arange(len(dataset))
    if hasattr(dataset, "captions") and bool(substituted.any()):  # caption datasets label each clip by its index
        unreadable = ", ".join(getattr(dataset, "skipped_files", {})) or f"{int(substituted.sum())} videos"
        raise ValueError(f"retrieval needs every listed video; unreadable: {unreadable} (remove them from the list)")
    return F.normalize(torch.cat(features), dim=-1)


def _clips_only(samples: list[dict]) -> dict[str, torch.Tensor]:
    return {"inputs": torch.stack([torch.as_tensor(s["inputs"]) for s in samples]),
            "label": torch.tensor([int(s.get("label", -1)) for s in samples])}


@torch.no_grad()
def embed_captions(model: Any, captions: Sequence[str], batch_size: int = 128) -> torch.Tensor:
    """Unit caption features (captions × D)."""
    model.eval()
    return F.normalize(torch.cat([model.encode_text(captions[i:i + batch_size]).float().cpu()
                                  for i in range(0, len(captions), batch_size)]), dim=-1)


def evaluate_retrieval(model: Any, dataset: Any, transform: Any = None, batch_size: int = 32,
                       ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Retrieval over every video of a caption dataset (``dataset.captions``: its captions per video)."""
    captions = [text for texts in dataset.captions for text in texts]
    video_of_text = torch.tensor([v for v, texts in enumerate(dataset.captions) for _ in texts])
    similarity = embed_captions(model, captions) @ embed_videos(model, dataset, transform, batch_size).t()
    return retrieval_metrics(similarity, video_of_text, ks)


def finetune_retrieval(model: Any, dataset: Dataset, transform: Any, iters: int, batch_size: int = 16,
                       lr: float = 1e-4, weight_decay: float = 0.05, betas: Sequence[float] = (0.9, 0.999),
                       temperature: float = 0.05, seed: int = 0, log: Any = None) -> list[float]:
    """SimVTP's retrieval fine-tuning: whole clips and whole captions, each encoded alone,
    mean-pooled, SimVTP's contrastive loss (both directions summed, τ 0.05), AdamW with a cosine
    learning rate, ``iters`` steps of ``batch_size`` pairs drawn without replacement per pass
    (seeded: the same run twice gives the same weights). Returns the loss per step."""
    from maekit.data.views import AugmentedView
    from maekit.engine.optim import no_weight_decay_names, takes_no_decay
    from maekit_videotext.losses import norm_softmax_loss

    if iters < 1 or batch_size < 2:
        raise ValueError(f"fine-tuning needs iters >= 1 and batch_size >= 2, got {iters} and {batch_size}")
    view = AugmentedView(dataset, transform, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    tuned = [(name, p) for name, p in model.named_parameters() if not name.startswith(("decoder.", "mlm_head.", "vtm_head."))]
    # no weight decay on biases, norms and declared tokens/tables (core's rule for training), as the
    # reference's optimiser factory
    declared = no_weight_decay_names(model)
    groups = [{"params": [p for n, p in tuned if not takes_no_decay(n, p, declared)], "weight_decay": weight_decay},
              {"params": [p for n, p in tuned if takes_no_decay(n, p, declared)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(float(betas[0]), float(betas[1])))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iters)
    losses = []
    model.train()
    for step in range(iters):
        if len(order) < batch_size:
            order += torch.randperm(len(dataset), generator=generator).tolist()
        picked, order = order[:batch_size], order[batch_size:]
        samples = [view[step * len(dataset) + i] for i in picked]  # a fresh virtual index: a fresh clip and caption
        clips = torch.stack([s["inputs"] for s in samples]).to(_device(model))
        videos = F.normalize(model.encode_video(clips), dim=-1)
        texts = F.normalize(model.encode_text([s["caption"] for s in samples]), dim=-1)
        loss = norm_softmax_loss(texts @ videos.t(), temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if log is not None and (step + 1) % max(iters // 5, 1) == 0:
            log(f"retrieval fine-tuning {step + 1}/{iters}: loss {losses[-1]:.4f}")
    model.eval()
    return losses


def ensure_vocabulary(model: Any, dataset: Any) -> bool:
    """Give an untrained model (no checkpoint) whose vocabulary is learned from captions the
    vocabulary of ``dataset``'s captions (read without decoding a clip); True when it did."""
    tokenizer = model.tokenizer
    if tokenizer.fitted:
        return False
    return bool(tokenizer.fit_dataset(dataset))  # as training fits it: the listed captions, up to fit_samples


FINETUNE_KEYS = {"iters", "batch_size", "lr", "weight_decay", "betas", "temperature"}


def retrieval_report(model: Any, section: dict[str, Any], eval_transform: Any, train_transform: Any = None,
                     finetune_iters: int | None = None, seed: int = 0, log: Any = None) -> dict[str, Any]:
    """The retrieval a config's ``retrieval`` section asks for: zero-shot on ``test`` (a dataset,
    or a list of galleries whose metrics are averaged; seen through ``eval_transform`` when the
    section names one, else through the one given), then, when fine-tuning is asked for
    (``finetune.iters`` or ``finetune_iters`` > 0), fine-tuned on ``train`` and tested again.
    Keys ``zero_shot/<metric>`` and ``finetuned/<metric>``; per gallery too when several."""
    from maekit.registry import build

    unknown = sorted(set(section) - {"test", "train", "batch_size", "ks", "finetune", "eval_transform"})
    if unknown or "test" not in section:
        raise ValueError(f"retrieval section: {'unknown keys ' + str(unknown) if unknown else 'no test dataset'} "
                         f"(keys: test, train, batch_size, ks, finetune, eval_transform)")
    if section.get("eval_transform"):  # the test views' own transform (SimVTP: 3 crops), else the config's
        eval_transform = build("transform", section["eval_transform"])
    specs = section["test"] if isinstance(section["test"], (list, tuple)) else [section["test"]]
    galleries = [build("dataset", dict(spec, train=False)) for spec in specs]
    ks = tuple(section.get("ks", (1, 5, 10)))
    batch_size = int(section.get("batch_size", 32))
    finetune = dict(section.get("finetune") or {})
    if sorted(set(finetune) - FINETUNE_KEYS):
        raise ValueError(f"retrieval.finetune: unknown keys {sorted(set(finetune) - FINETUNE_KEYS)} "
                         f"(keys: {', '.join(sorted(FINETUNE_KEYS))})")
    configured = int(finetune.pop("iters", 0))
    iters = configured if finetune_iters is None else finetune_iters
    train_set = build("dataset", section["train"]) if section.get("train") else None
    ensure_vocabulary(model, train_set if train_set is not None else galleries[0])

    def test(stage: str) -> dict[str, Any]:
        results = [evaluate_retrieval(model, gallery, eval_transform, batch_size, ks) for gallery in galleries]
        report = {f"{stage}/{key}": float(np.mean([r[key] for r in results])) for key in results[0]}
        if len(results) > 1:
            report.update({f"{stage}/gallery_{g}/{key}": value for g, r in enumerate(results) for key, value in r.items()
                           if "@" in key})
        return report

    report: dict[str, Any] = {**test("zero_shot"), "galleries": len(galleries)}
    if iters > 0:
        if train_set is None:
            raise ValueError("retrieval fine-tuning needs retrieval.train (a caption dataset)")
        losses = finetune_retrieval(model, train_set, train_transform, iters, seed=seed, log=log, **finetune)
        report.update({**test("finetuned"), "finetune_iters": iters, "finetune_final_loss": losses[-1]})
    return report
