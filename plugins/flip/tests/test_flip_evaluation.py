"""Zero-shot classification and retrieval against independent computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from maekit_flip.evaluate import retrieval_recall, zero_shot_accuracy, zero_shot_classifier


class FakeTowers(torch.nn.Module):
    """Embeddings looked up by image value / first real text token: known geometry."""

    def __init__(self, image_table: torch.Tensor, text_table: torch.Tensor) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.image_table, self.text_table = image_table, text_table
        self.target = type("Text", (), {"context_length": 4})()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_table[images[:, 0, 0, 0].long()]

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_table[ids[:, 1]]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def word_tokenizer(vocabulary: list[str]):
    def tokenize(texts):
        return torch.tensor([[0, vocabulary.index(t), 0, 0] for t in texts])
    return tokenize


def test_zero_shot_classifier_averages_unit_prompt_embeddings_and_renormalises():
    rng = np.random.default_rng(0)
    prompts = [f"{t} {c}" for c in ("cat", "dog") for t in ("a", "the", "my")]
    text_table = torch.tensor(unit(rng.normal(size=(len(prompts), 5))), dtype=torch.float32)
    model = FakeTowers(torch.zeros(1, 5), text_table)
    weights = zero_shot_classifier(model, ["cat", "dog"], ["a {}", "the {}", "my {}"], tokenizer=word_tokenizer(prompts))
    table = text_table.numpy()
    for column, rows in enumerate((slice(0, 3), slice(3, 6))):
        np.testing.assert_allclose(weights[:, column].numpy(), unit(table[rows].mean(0)), rtol=1e-6)
    with pytest.raises(ValueError, match="must contain '\\{\\}'"):
        zero_shot_classifier(model, ["cat"], ["no slot"], tokenizer=word_tokenizer(prompts))


class Labelled(Dataset):
    def __init__(self, labels: list[int], with_text: bool = False, image_ids: list[int] | None = None) -> None:
        self.labels, self.with_text, self.image_ids = labels, with_text, image_ids

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        image_id = self.image_ids[index] if self.image_ids else index
        sample = {"inputs": torch.full((1, 2, 2), float(image_id)), "label": self.labels[index], "image_id": image_id}
        if self.with_text:
            sample["text"] = torch.tensor([0, index, 0, 0])
        return sample


def test_zero_shot_top1_and_top5_match_a_direct_ranking():
    rng = np.random.default_rng(1)
    classes = [f"c{i}" for i in range(7)]
    text_table = torch.tensor(unit(rng.normal(size=(7, 6))), dtype=torch.float32)
    image_table = torch.tensor(unit(rng.normal(size=(20, 6))), dtype=torch.float32)
    labels = rng.integers(0, 7, size=20).tolist()
    model = FakeTowers(image_table, text_table)
    scores = zero_shot_accuracy(model, Labelled(labels), classes, ["{}"], tokenizer=word_tokenizer(classes))
    logits = image_table.numpy() @ text_table.numpy().T
    order = np.argsort(-logits, axis=1)
    assert scores["top1"] == pytest.approx(np.mean(order[:, 0] == labels))
    assert scores["top5"] == pytest.approx(np.mean([label in row[:5] for label, row in zip(labels, order)]))
    assert 0 < scores["top1"] < scores["top5"] < 1  # the case is not degenerate
    with pytest.raises(ValueError, match="labels in \\[0, 7\\)"):
        zero_shot_accuracy(model, Labelled([9] * 3), classes, ["{}"], tokenizer=word_tokenizer(classes))


def test_retrieval_recall_counts_any_caption_of_an_image_as_a_hit():
    rng = np.random.default_rng(2)
    image_ids = [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7]  # 12 captions of 8 images
    image_table = torch.tensor(unit(rng.normal(size=(8, 4))), dtype=torch.float32)
    text_table = torch.tensor(unit(rng.normal(size=(12, 4))), dtype=torch.float32)
    model = FakeTowers(image_table, text_table)
    scores = retrieval_recall(model, Labelled([-1] * 12, with_text=True, image_ids=image_ids), ks=(1, 5), batch_size=5)
    similarity = image_table.numpy() @ text_table.numpy().T
    owner = np.array(image_ids)
    for k in (1, 5):
        i2t = np.mean([np.isin(np.argsort(-similarity[i])[:k], np.where(owner == i)[0]).any() for i in range(8)])
        t2i = np.mean([owner[c] in np.argsort(-similarity[:, c])[:k] for c in range(12)])
        assert scores[f"image_to_text_R@{k}"] == pytest.approx(i2t)
        assert scores[f"text_to_image_R@{k}"] == pytest.approx(t2i)
    assert scores["num_images"] == 8 and scores["num_captions"] == 12
