"""Core's loss composer with one mask per part (an audio-visual model masks each modality on its
own), and the retrieval metrics every cross-modal plugin reports, against direct computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maekit.eval.retrieval import retrieval_metrics
from maekit.nn.losses import NamedLosses
from maekit.structures import Mask


def test_named_losses_give_each_part_its_own_mask_and_weight():
    torch.manual_seed(0)
    pred = {"audio": torch.randn(2, 4, 3), "video": torch.randn(2, 6, 3)}
    target = {"audio": torch.randn(2, 4, 3), "video": torch.randn(2, 6, 3)}
    masks = {"audio": Mask.from_masked(torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0]]).bool()),
             "video": Mask.from_masked(torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0]]).bool())}
    loss = NamedLosses({"audio": dict(type="masked_mse", name="a"), "video": dict(type="masked_mse", name="v")},
                       weights={"audio": 0.25})
    found = loss(pred, target, masks)
    for part, name in (("audio", "a"), ("video", "v")):
        removed = masks[part].masked.float()
        per_token = ((pred[part] - target[part]) ** 2).mean(-1)
        assert torch.allclose(found[name], (per_token * removed).sum() / removed.sum())
    assert torch.allclose(found["loss"], 0.25 * found["a"] + found["v"])
    with pytest.raises(ValueError, match="not among the parts"):
        NamedLosses({"audio": dict(type="masked_mse")}, weights={"sound": 1.0})
    with pytest.raises(ValueError, match="masks name sound, which are not among the parts"):
        loss(pred, target, {"sound": masks["audio"], "video": masks["video"]})


def test_retrieval_ranks_and_recalls_equal_a_direct_count():
    rng = np.random.default_rng(0)
    similarity = torch.from_numpy(rng.normal(size=(12, 5))).float()
    match = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4])  # several queries per candidate
    found = retrieval_metrics(similarity, match, ks=(1, 2), names=("audio_to_video", "video_to_audio"))
    query_ranks = np.array([1 + int((similarity[q] > similarity[q, match[q]]).sum()) for q in range(12)])
    candidate_ranks = np.array([min(1 + int((similarity[:, c] > similarity[q, c]).sum()) for q in range(12) if match[q] == c)
                                for c in range(5)])
    for name, ranks in (("audio_to_video", query_ranks), ("video_to_audio", candidate_ranks)):
        assert found[f"{name}_R@1"] == pytest.approx(100 * np.mean(ranks <= 1))
        assert found[f"{name}_R@2"] == pytest.approx(100 * np.mean(ranks <= 2))
        assert found[f"{name}_MdR"] == pytest.approx(np.median(ranks - 1) + 1)
        assert found[f"{name}_MnR"] == pytest.approx(ranks.mean())
    assert found["num_queries"] == 12 and found["num_candidates"] == 5
    with pytest.raises(ValueError, match="4 videos have no text"):
        retrieval_metrics(similarity, torch.zeros(12, dtype=torch.long))
