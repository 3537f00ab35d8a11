"""FLIP's evaluations: zero-shot classification by prompts, and image–text retrieval."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from maekit_flip.tokenizer import resolve_tokenizer, tokenize

__all__ = ["zero_shot_classifier", "zero_shot_accuracy", "embed_images", "retrieval_recall"]


@torch.no_grad()
def zero_shot_classifier(model: torch.nn.Module, classnames: Sequence[str], templates: Sequence[str],
                         tokenizer: Any = "open_clip") -> torch.Tensor:
    """Class weights E×C: for each class every template filled with its name, the unit text
    embeddings averaged and re-normalised (CLIP's prompt ensembling, open_clip's
    ``build_zero_shot_classifier``)."""
    if not classnames or not templates:
        raise ValueError("zero-shot needs at least one class name and one template")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"zero-shot templates must contain '{{}}' where the class name goes: {bad}")
    model.eval()
    context = model.target.context_length
    tokenizer = resolve_tokenizer(tokenizer, context)
    weights = []
    for name in classnames:
        ids = tokenize(tokenizer, [t.format(name) for t in templates], context)
        embedding = model.encode_text(ids.to(_device(model))).mean(dim=0)
        weights.append(embedding / embedding.norm())
    return torch.stack(weights, dim=1)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def embed_images(model: torch.nn.Module, dataset: Dataset, transform: Any = None,
                 batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit image embeddings, labels and image ids of every sample (no masking)."""
    from maekit.data.views import TransformedView

    model.eval()
    view = TransformedView(dataset, transform) if transform is not None else dataset
    features, labels, ids = [], [], []
    for batch in DataLoader(view, batch_size=batch_size):
        features.append(model.encode_image(batch["inputs"].to(_device(model))).float().cpu())
        labels.append(torch.as_tensor(batch["label"]))
        ids.append(torch.as_tensor(batch.get("image_id", batch["label"])))
    return torch.cat(features), torch.cat(labels), torch.cat(ids)


@torch.no_grad()
def zero_shot_accuracy(model: torch.nn.Module, dataset: Dataset, classnames: Sequence[str],
                       templates: Sequence[str], transform: Any = None, tokenizer: Any = "open_clip",
                       batch_size: int = 128) -> dict[str, float]:
    """Top-1 and top-5 accuracy of ``logits = 100 · image @ class_weights`` on a labelled dataset."""
    weights = zero_shot_classifier(model, classnames, templates, tokenizer).float().cpu()
    images, labels, _ = embed_images(model, dataset, transform, batch_size)
    if (labels < 0).any() or (labels >= len(classnames)).any():
        raise ValueError(f"zero-shot needs labels in [0, {len(classnames)}) for its {len(classnames)} class names; "
                         f"the dataset has labels in [{int(labels.min())}, {int(labels.max())}]")
    logits = 100.0 * images @ weights
    ranked = logits.topk(min(5, len(classnames)), dim=1).indices
    return {"top1": float((ranked[:, 0] == labels).float().mean()),
            "top5": float((ranked == labels[:, None]).any(dim=1).float().mean()),
            "num_images": len(labels), "num_classes": len(classnames)}


@torch.no_grad()
def retrieval_recall(model: torch.nn.Module, dataset: Dataset, transform: Any = None,
                     ks: Sequence[int] = (1, 5, 10), batch_size: int = 128) -> dict[str, float]:
    """Image→text and text→image recall@k over a caption dataset (samples carry ``text`` and
    ``image_id``). Each distinct image is embedded once; an image→text query hits when any of its
    captions is in the top k, a text→image query when its image is."""
    from maekit.data.views import TransformedView

    model.eval()
    view = TransformedView(dataset, transform) if transform is not None else dataset
    image_of_caption, text_features, image_features, seen = [], [], {}, set()
    for batch in DataLoader(view, batch_size=batch_size):
        ids = torch.as_tensor(batch["image_id"])
        text_features.append(model.encode_text(batch["text"].to(_device(model))).float().cpu())
        image_of_caption.append(ids)
        fresh = [i for i, image_id in enumerate(ids.tolist()) if image_id not in seen]
        if fresh:
            embedded = model.encode_image(batch["inputs"][fresh].to(_device(model))).float().cpu()
            for row, i in enumerate(fresh):
                seen.add(int(ids[i]))
                image_features[int(ids[i])] = embedded[row]
    order = sorted(image_features)
    images = torch.stack([image_features[i] for i in order])
    texts = torch.cat(text_features)
    position = {image_id: row for row, image_id in enumerate(order)}
    caption_image = torch.tensor([position[i] for i in torch.cat(image_of_caption).tolist()])
    similarity = images @ texts.t()  # images × captions
    results: dict[str, float] = {"num_images": len(order), "num_captions": len(texts)}
    for k in ks:
        top_texts = similarity.topk(min(k, len(texts)), dim=1).indices          # images × k captions
        results[f"image_to_text_R@{k}"] = float((caption_image[top_texts] == torch.arange(len(order))[:, None])
                                                .any(dim=1).float().mean())
        top_images = similarity.t().topk(min(k, len(order)), dim=1).indices      # captions × k images
        results[f"text_to_image_R@{k}"] = float((top_images == caption_image[:, None]).any(dim=1).float().mean())
    return results
