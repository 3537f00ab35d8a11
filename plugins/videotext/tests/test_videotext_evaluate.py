"""Retrieval metrics against a direct ranking computed here, and SimVTP's two cross-modal losses
against values written out by hand."""
from __future__ import annotations

import math

import pytest
import torch
from maekit_videotext.evaluate import retrieval_metrics
from maekit_videotext.losses import MaskedLanguageLoss, VideoTextContrastiveLoss, VideoTextMatchingLoss


def direct_ranks(similarity: torch.Tensor, video_of_text: list[int]) -> tuple[list[int], list[int]]:
    """Sort every query's candidates, best first; a query's rank is where its match first appears."""
    texts, videos = similarity.shape
    text_ranks = []
    for t in range(texts):
        order = sorted(range(videos), key=lambda v: -float(similarity[t, v]))
        text_ranks.append(order.index(video_of_text[t]) + 1)
    video_ranks = []
    for v in range(videos):
        order = sorted(range(texts), key=lambda t: -float(similarity[t, v]))
        video_ranks.append(min(order.index(t) + 1 for t in range(texts) if video_of_text[t] == v))
    return text_ranks, video_ranks


def test_recall_and_median_rank_equal_a_direct_ranking():
    torch.manual_seed(0)
    video_of_text = [v for v in range(30) for _ in range(1 + v % 3)]  # one to three captions per video
    similarity = torch.randn(len(video_of_text), 30)
    similarity[torch.arange(len(video_of_text)), torch.tensor(video_of_text)] += 1.5  # better than chance
    metrics = retrieval_metrics(similarity, torch.tensor(video_of_text))
    text_ranks, video_ranks = direct_ranks(similarity, video_of_text)
    for prefix, ranks in (("text_to_video", text_ranks), ("video_to_text", video_ranks)):
        for k in (1, 5, 10):
            assert metrics[f"{prefix}_R@{k}"] == pytest.approx(100 * sum(r <= k for r in ranks) / len(ranks))
        zero_based = sorted(r - 1 for r in ranks)
        middle = len(zero_based) // 2
        median = zero_based[middle] if len(zero_based) % 2 else (zero_based[middle - 1] + zero_based[middle]) / 2
        assert metrics[f"{prefix}_MdR"] == median + 1  # CLIP4Clip's np.median(ranks) + 1, no floor
        assert metrics[f"{prefix}_MnR"] == pytest.approx(sum(ranks) / len(ranks))
    assert 0 < metrics["text_to_video_R@1"] < 100 and metrics["num_captions"] == len(video_of_text)


def test_ties_go_to_the_query_and_an_even_median_can_be_a_half():
    similarity = torch.tensor([[0.5, 0.5, 0.1, 0.0], [0.2, 0.9, 0.9, 0.9], [0.0, 0.0, 0.3, 0.1], [0.1, 0.2, 0.3, 0.4]])
    metrics = retrieval_metrics(similarity, torch.tensor([0, 1, 2, 3]))
    # text ranks: 1 (tied with video 1), 1 (three-way tie), 1, 1; video 3's caption 3 ranks 1 too
    assert metrics["text_to_video_R@1"] == 100.0
    columns = torch.tensor([[0.9, 0.0], [0.1, 0.0], [0.0, 0.8], [0.0, 0.9]])  # 4 captions, 2 videos
    metrics = retrieval_metrics(columns, torch.tensor([0, 0, 1, 1]))
    # every text ranks first (caption 1's 0.1 beats video 1's 0.0): ranks 1, 1, 1, 1
    assert metrics["text_to_video_MdR"] == 1.0
    uneven = torch.tensor([[0.1, 0.9], [0.9, 0.1]])  # both texts rank their video second: ranks 2, 2
    assert retrieval_metrics(uneven, torch.tensor([0, 1]))["text_to_video_MdR"] == 2.0
    half = torch.tensor([[0.9, 0.1], [0.9, 0.1]])  # ranks 1 and 2: median of 0-based 0, 1 is 0.5
    assert retrieval_metrics(half, torch.tensor([0, 1]))["text_to_video_MdR"] == 1.5


def test_a_video_without_caption_is_an_error():
    with pytest.raises(ValueError, match="1 videos have no text: every video needs one"):
        retrieval_metrics(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_vtc_is_the_sum_of_both_directions_written_out():
    s = torch.tensor([[0.9, 0.1, -0.2], [0.3, 0.5, 0.0], [-0.4, 0.2, 0.7]])
    tau = 0.05

    def log_softmax_diagonal(m):
        return [m[i][i] / tau - math.log(sum(math.exp(x / tau) for x in m[i])) for i in range(3)]

    rows = log_softmax_diagonal(s.tolist())
    columns = log_softmax_diagonal(s.t().tolist())
    expected = -sum(rows) / 3 - sum(columns) / 3
    out = VideoTextContrastiveLoss(temperature=tau)(s)
    assert float(out["vtc"]) == pytest.approx(expected, rel=1e-5) and float(out["vtc_accuracy"]) == 1.0
    with pytest.raises(ValueError, match="square"):
        VideoTextContrastiveLoss()(torch.zeros(2, 3))


def test_vtm_and_mlm_are_cross_entropies_over_what_they_count():
    rows, labels = [[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]], [1, 1, 0, 0]
    expected = sum(-math.log(math.exp(row[label]) / sum(math.exp(x) for x in row)) for row, label in zip(rows, labels)) / 4
    out = VideoTextMatchingLoss()(torch.tensor(rows), torch.tensor(labels))
    assert float(out["vtm"]) == pytest.approx(expected, rel=1e-6) and float(out["vtm_accuracy"]) == 0.75  # the tie goes to class 0
    vocab_logits = torch.randn(2, 3, 7)
    targets = torch.tensor([[-100, 4, -100], [2, -100, 6]])
    picked = [(0, 1, 4), (1, 0, 2), (1, 2, 6)]
    manual = sum(-torch.log_softmax(vocab_logits[b, t], 0)[i] for b, t, i in picked) / 3
    assert float(MaskedLanguageLoss()(vocab_logits, targets)["mlm"]) == pytest.approx(float(manual), rel=1e-5)
    assert float(MaskedLanguageLoss()(vocab_logits, torch.full((2, 3), -100))["loss"]) == 0.0


def test_a_gallery_refuses_a_clip_it_cannot_read(tmp_path):
    """With on_error="skip" an unreadable clip would be served by the next one: retrieval would score
    a stand-in where its captions point, so it is an error naming the file."""
    import numpy as np
    from maekit_video.io import write_video
    from maekit_videotext.data import VideoCaptions
    from maekit_videotext.evaluate import evaluate_retrieval

    from maekit.registry import build

    for n in range(2):
        write_video(tmp_path / f"{n}.mp4", np.full((6, 16, 16, 3), 60 * n, dtype=np.uint8), fps=8)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "captions.csv").write_text("video,caption\n0.mp4,a dark clip\nbroken.mp4,lost\n1.mp4,a grey clip\n")
    gallery = VideoCaptions(tmp_path / "captions.csv", clip=dict(sampling="consecutive", num_frames=4, stride=1),
                            train=False, on_error="skip")
    torch.manual_seed(0)
    model = build("model", dict(type="simvtp", size=None, encoder=dict(embed_dim=32, depth=1, num_heads=2), num_frames=4,
                                img_size=16, patch_size=4, tubelet_size=2, decoder_embed_dim=16, decoder_depth=1,
                                decoder_num_heads=2, text=dict(vocab_size=64, max_length=16)))
    model.tokenizer.fit([["a dark clip", "a grey clip", "lost"]])
    with pytest.raises(ValueError, match="unreadable: .*broken.mp4"):
        evaluate_retrieval(model, gallery, build("transform", dict(type="video_eval", size=16)), batch_size=3)


def test_ranks_in_chunks_equal_ranks_at_once():
    from maekit_videotext.evaluate import ranks_of

    torch.manual_seed(3)
    video_of_text = torch.tensor([v for v in range(7) for _ in range(1 + v % 2)])
    similarity = torch.randn(len(video_of_text), 7)
    whole = ranks_of(similarity, video_of_text, chunk=1000)
    for chunk in (1, 3, 4):
        parts = ranks_of(similarity, video_of_text, chunk=chunk)
        assert torch.equal(parts[0], whole[0]) and torch.equal(parts[1], whole[1])


def test_several_test_views_average_their_features(tmp_path):
    """3 clips × 3 crops per video (SimVTP's test): the video's feature is the mean of its nine
    views' features, then unit length."""
    import numpy as np
    from maekit_video.io import write_video
    from maekit_videotext.data import VideoCaptions
    from maekit_videotext.evaluate import embed_videos

    from maekit.registry import build

    rng = np.random.default_rng(0)
    for n in range(2):
        write_video(tmp_path / f"{n}.mp4", rng.integers(0, 255, (12, 16, 24, 3), dtype=np.uint8), fps=8)
    (tmp_path / "captions.csv").write_text("video,caption\n0.mp4,one\n1.mp4,two\n")
    clip = dict(sampling="consecutive", num_frames=4, stride=1)
    gallery = VideoCaptions(tmp_path / "captions.csv", clip=clip, train=False, test_clips=3)
    transform = build("transform", dict(type="video_eval", size=16, crops=3))
    torch.manual_seed(0)
    model = build("model", dict(type="simvtp", size=None, encoder=dict(embed_dim=32, depth=1, num_heads=2), num_frames=4,
                                img_size=16, patch_size=4, tubelet_size=2, decoder_embed_dim=16, decoder_depth=1,
                                decoder_num_heads=2, text=dict(vocab_size=64, max_length=16))).eval()
    got = embed_videos(model, gallery, transform, batch_size=2)
    views = transform(gallery[1]["inputs"])
    assert views.shape[0] == 9
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_video(views).mean(0), dim=0)
    assert torch.allclose(got[1], expected, atol=1e-5)
