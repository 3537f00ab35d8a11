"""What SimVTP's passes route and optimise, and what SMAUG-style sparsification keeps, each against
a computation written out here."""
from __future__ import annotations

import pytest
import torch

from maekit.engine.model import SampleNoise
from maekit.registry import build

CAPTIONS = ["a seven moving left", "the digit 3 heading up quickly now", "two drifting down", "a 1 sliding right"]
TINY = dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=2), num_frames=8, img_size=16, patch_size=4,
            tubelet_size=2, mask_ratio=0.75, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2,
            text=dict(vocab_size=64, max_length=16))


def tiny(method: str = "simvtp", **options):
    torch.manual_seed(0)
    model = build("model", {"type": method, **TINY, **options})
    model.tokenizer.fit([CAPTIONS])
    return model.eval()


def batch(size: int = 4) -> dict:
    torch.manual_seed(1)
    return {"inputs": torch.randn(size, 3, 8, 16, 16), "caption": CAPTIONS[:size]}


def test_joint_pass_is_the_blocks_over_video_then_caption_with_padding_hidden():
    model = tiny()
    b = batch()
    tokens = model.tokenize(b["inputs"])
    text = model.tokenizer(b["caption"])
    got = model.encode_tokens(tokens, text.ids, text.padding)
    # written out: [embedded cubes + positions; BERT embeddings], each block with padded keys at -inf
    x = torch.cat([model.encoder.embed(tokens), model.text_embeddings(text.ids)], dim=1)
    keys = torch.cat([torch.ones(4, tokens.num_tokens, dtype=torch.bool), ~text.padding], dim=1)
    for block in model.encoder.blocks:
        attn = block.attn
        h = block.norm1(x)
        q, k, v = attn.project_qkv(h)
        scores = (q @ k.transpose(-2, -1)) * attn.head_dim ** -0.5
        weights = scores.masked_fill(~keys[:, None, None, :], float("-inf")).softmax(-1)
        x = x + block.ls1(attn.proj((weights @ v).transpose(1, 2).flatten(2)))
        x = x + block.ls2(block.mlp(block.norm2(x)))
    assert torch.allclose(got, model.encoder.norm(x), atol=1e-5)
    # what a padded position holds changes nothing at the others
    poked = text.ids.clone()
    poked[text.padding] = 7
    again = model.encode_tokens(tokens, poked, text.padding)
    real = torch.cat([torch.ones(4, tokens.num_tokens, dtype=torch.bool), ~text.padding], dim=1)
    assert torch.allclose(again[real], got[real], atol=1e-5) and text.padding.any()


def test_one_step_routes_each_term_and_sums_them_with_their_weights():
    model = tiny(weights=dict(mvm=1.0, mlm=0.5, vtc=2.0, vtm=1.0))
    b = batch()
    noise = SampleNoise(0, torch.arange(4))
    out = model.run_steps(b, noise)
    visible = out.mask.ids_keep.shape[1]
    text = out.extras["text"]
    assert out.pred["mvm"].shape == out.target["mvm"].shape and out.latents.shape[1] == visible
    assert out.pred["mlm"].shape == (*text.ids.shape, 64) and out.pred["vtc"].shape == (4, 4)
    assert out.pred["vtm"].shape == (8, 2) and out.target["vtm"].tolist() == [1] * 4 + [0] * 4
    # text masking: every chosen token became [MASK]; labels hold the originals there
    chosen = text.labels != -100
    assert chosen.any() and (text.masked_ids[chosen] == model.tokenizer.token_id("[MASK]")).all()
    assert torch.equal(text.labels[chosen], text.ids[chosen]) and torch.equal(text.masked_ids[~chosen], text.ids[~chosen])
    # MVM = VideoMAE's masked MSE of the decoder's prediction over removed cubes
    removed = out.mask.masked.bool()
    mvm = ((out.pred["mvm"] - out.target["mvm"]) ** 2).mean(-1)[removed].mean()
    losses = model(b, noise)
    assert float(losses["mvm"]) == pytest.approx(float(mvm), rel=1e-5)
    total = losses["mvm"] + 0.5 * losses["mlm"] + 2.0 * losses["vtc"] + losses["vtm"]
    assert float(losses["loss"]) == pytest.approx(float(total), rel=1e-5)
    # the same per-sample noise gives the same step; the text and video draws do not share numbers
    assert float(model(b, SampleNoise(0, torch.arange(4)))["loss"]) == pytest.approx(float(losses["loss"]), rel=1e-6)
    assert float(model(b, SampleNoise(1, torch.arange(4)))["loss"]) != pytest.approx(float(losses["loss"]), rel=1e-6)


def test_vtc_and_vtm_read_the_masked_caption_and_the_visible_cubes():
    """VTC's text side is the masked caption alone; changing a removed cube's pixels changes
    neither VTC nor VTM (they see the visible cubes only)."""
    model = tiny()
    b = batch()
    out = model.run_steps(b, SampleNoise(0, torch.arange(4)))
    text = out.extras["text"]
    text_alone = model.pool(model.encode_tokens(None, text.masked_ids, text.padding), text.padding)
    video_alone = model.encode_tokens(out.tokens.take(out.mask.ids_keep)).mean(1)
    expected = torch.nn.functional.normalize(text_alone, dim=-1) @ torch.nn.functional.normalize(video_alone, dim=-1).t()
    assert torch.allclose(out.pred["vtc"], expected, atol=1e-5)
    poked = b["inputs"].clone()
    removed = out.mask.masked[0].bool().view(4, 4, 4)  # (t, h, w) cubes of clip 0
    t, row, col = removed.nonzero()[0].tolist()
    poked[0, :, 2 * t:2 * t + 2, 4 * row:4 * row + 4, 4 * col:4 * col + 4] += 5.0
    again = model.run_steps({**b, "inputs": poked}, SampleNoise(0, torch.arange(4)))
    assert torch.allclose(again.pred["vtc"], out.pred["vtc"], atol=1e-5)
    assert torch.allclose(again.pred["vtm"], out.pred["vtm"], atol=1e-5)


def test_mlm_reads_the_joint_pass_and_the_draws_are_disjoint():
    """The caption's predictions change when a visible cube changes (MLM reads video and text
    together), and one draw per sample is cut into disjoint video, text and pairing parts."""
    model = tiny()
    b = batch()
    noise = SampleNoise(0, torch.arange(4))
    out = model.run_steps(b, noise)
    t, row, col = (~out.mask.masked[0].bool()).view(4, 4, 4).nonzero()[0].tolist()  # a visible cube of clip 0
    poked = b["inputs"].clone()
    poked[0, :, 2 * t:2 * t + 2, 4 * row:4 * row + 4, 4 * col:4 * col + 4] += 5.0
    again = model.run_steps({**b, "inputs": poked}, noise)
    assert not torch.allclose(again.pred["mlm"][0], out.pred["mlm"][0], atol=1e-4)
    assert torch.allclose(again.pred["mlm"][1:], out.pred["mlm"][1:], atol=1e-5)  # other clips untouched

    def counting(shape, device):  # every number drawn once: overlapping parts would share values
        return torch.arange(shape[0] * shape[1], dtype=torch.float32).view(shape)

    tokens = model.tokenize(b["inputs"])
    video, text, pair = model.split_noise(counting, tokens, 9)
    parts = [set(video.flatten().tolist()), set(text.flatten().tolist()), set(pair.flatten().tolist())]
    assert video.shape == model.masker.noise_shape(tokens) and text.shape == (4, 18) and pair.shape == (4,)
    assert sum(len(part) for part in parts) == len(set().union(*parts))


def test_negatives_are_uniform_over_the_other_clips():
    model = tiny()
    counts = torch.zeros(5, 5)
    for _ in range(4000):
        other = model.negatives(5, torch.rand(5), torch.device("cpu"))
        counts[torch.arange(5), other] += 1
    assert counts.diagonal().sum() == 0
    off = counts[~torch.eye(5, dtype=torch.bool)] / 4000
    assert (off - 0.25).abs().max() < 0.04
    with pytest.raises(ValueError, match="batch_size >= 2"):
        model.negatives(1, None, torch.device("cpu"))


def test_whole_caption_contrast_reads_the_unmasked_ids():
    model = tiny(contrast_caption="whole")
    out = model.run_steps(batch(), SampleNoise(0, torch.arange(4)))
    text = out.extras["text"]
    text_alone = model.pool(model.encode_tokens(None, text.ids, text.padding), text.padding)
    video_alone = model.encode_tokens(out.tokens.take(out.mask.ids_keep)).mean(1)
    expected = torch.nn.functional.normalize(text_alone, dim=-1) @ torch.nn.functional.normalize(video_alone, dim=-1).t()
    assert torch.allclose(out.pred["vtc"], expected, atol=1e-5)


def test_pictures_reconstruct_one_clip_without_captions():
    model = tiny()
    rows = model.panels(batch(1)["inputs"], seed=0)
    assert len(rows) >= 2 and all(len(row) > 0 for row in rows)


def test_training_needs_captions():
    with pytest.raises(ValueError, match="has no 'caption'"):
        tiny()({"inputs": torch.randn(2, 3, 8, 16, 16)})


def direct_selection(scores, times, slices, keep_frames, keep_tokens):
    """Per clip: the slices with the highest mean score, then each kept slice's best tokens."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    for b in range(scores.shape[0]):
        means = {t: scores[b][times[b] == t].mean().item() for t in range(slices)}
        kept = sorted(means, key=lambda t: -means[t])[: max(1, round(keep_frames * slices))]
        for t in kept:
            where = (times[b] == t).nonzero().flatten().tolist()
            best = sorted(where, key=lambda i: -scores[b, i].item())[: max(1, round(keep_tokens * len(where)))]
            keep[b, best] = True
    return keep


def test_sparsifier_keeps_the_best_tokens_of_the_best_slices():
    from maekit_videotext.model import TokenSparsifier

    torch.manual_seed(0)
    times = torch.arange(4).repeat_interleave(6).expand(3, -1)  # 4 slices × 6 visible tokens
    scores = torch.rand(3, 24)
    sparsifier = TokenSparsifier(layer=1, keep_tokens=0.5, keep_frames=0.5)
    got = sparsifier.select(scores, times, 4)
    assert torch.equal(got, direct_selection(scores, times, 4, 0.5, 0.5)) and (got.sum(1) == 6).all()
    uneven = times.clone()
    uneven[:, 0] = 1
    with pytest.raises(ValueError, match="same number of visible tokens in every time slice"):
        sparsifier.select(scores, uneven, 4)


def test_smaug_passes_see_only_kept_cubes_and_the_loss_counts_kept_slices():
    model = tiny("smaug", sparsifier=dict(layer=1, keep_tokens=0.5, keep_frames=0.75))
    b = batch()
    tokens = model.tokenize(b["inputs"])
    original = model.masker(tokens, noise=torch.rand(4, 16))
    visible = tokens.take(original.ids_keep)
    _, kept, mask = model.encode_video_alone(visible, original)
    # 4 slices × 4 visible cubes: 3 slices kept, 2 cubes in each
    assert kept.num_tokens == 6 and mask.ids_keep.shape == (4, 6)
    times = torch.arange(64) // 16  # time-major cube order
    for row in range(4):
        kept_ids = set(mask.ids_keep[row].tolist())
        assert kept_ids <= set(original.ids_keep[row].tolist())
        slices = {int(times[i]) for i in kept_ids}
        assert len(slices) == 3
        thrown = set(mask.thrown[row].nonzero().flatten().tolist())
        was_visible = set(original.ids_keep[row].tolist())
        expected_thrown = (was_visible - kept_ids) | {i for i in range(64) if int(times[i]) not in slices}
        assert thrown == expected_thrown
        predicted = set(mask.predicted[row].nonzero().flatten().tolist())
        assert predicted == {i for i in range(64) if i not in was_visible and int(times[i]) in slices}
    out = model.run_steps(b, SampleNoise(0, torch.arange(4)))
    assert out.latents.shape[1] == 6 and (out.pred["mvm"][out.mask.thrown] == 0).all()


def test_retrieval_features_read_whole_clips_and_unmasked_captions():
    model = tiny("smaug", sparsifier=dict(layer=1))
    b = batch()
    whole = model.encode_tokens(model.tokenize(b["inputs"]))
    assert torch.allclose(model.encode_video(b["inputs"]), whole.mean(1), atol=1e-6)
    text = model.tokenizer(CAPTIONS)
    features = model.encode_tokens(None, text.ids, text.padding)
    weights = (~text.padding).float()
    expected = (features * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
    assert torch.allclose(model.encode_text(CAPTIONS), expected, atol=1e-6)
    reference = tiny(text_pool="all")
    assert torch.allclose(reference.encode_text(CAPTIONS),
                          reference.encode_tokens(None, text.ids, text.padding).mean(1), atol=1e-6)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"text: unknown keys \['mask_ratio'\]"):
        build("model", {"type": "simvtp", **TINY, "text": dict(mask_ratio=0.5)})
    with pytest.raises(ValueError, match="sparsifier layer 3 is past the encoder's 2 blocks"):
        build("model", {"type": "smaug", **TINY, "sparsifier": dict(layer=3)})
    with pytest.raises(ValueError, match="text_pool must be"):
        build("model", {"type": "simvtp", **TINY, "text_pool": "cls"})
    with pytest.raises(ValueError, match="bert_checkpoint needs text.vocab_file"):
        build("model", {"type": "simvtp", **TINY, "text": dict(vocab_size=64, bert_checkpoint="bert.bin")})


def test_video_branch_starts_from_a_videomae_checkpoint_in_either_layout(tmp_path):
    """The paper's init: VideoMAE pre-training weights into the encoder and decoder — the release's
    layout (encoder_to_decoder, mask_token, decoder.head) or a maekit videomae run's."""
    from maekit.io.checkpoint import save_state_dict

    video = {k: v for k, v in TINY.items() if k != "text"}
    torch.manual_seed(5)
    source = build("model", {"type": "videomae", **video})
    ours = {k: v for k, v in source.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    official = {{"decoder.embed.weight": "encoder_to_decoder.weight", "decoder.mask_token": "mask_token",
                 "decoder.pred.weight": "decoder.head.weight", "decoder.pred.bias": "decoder.head.bias"}.get(k, k): v
                for k, v in ours.items()}
    save_state_dict(official, tmp_path / "checkpoint-1599.pth", wrap="model")
    save_state_dict({f"model.{k}": v for k, v in source.state_dict().items()}, tmp_path / "run.pth", wrap="state_dict")
    for path, layout in ((tmp_path / "checkpoint-1599.pth", "official"), (tmp_path / "run.pth", "maekit")):
        model = build("model", {"type": "simvtp", **TINY, "video_checkpoint": str(path), "video_layout": layout})
        loaded = model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in ours.items()), layout
    wrong = dict(TINY, encoder=dict(embed_dim=16, depth=2, num_heads=2))
    with pytest.raises(ValueError, match="checkpoint-1599.pth"):
        build("model", {"type": "simvtp", **wrong, "video_checkpoint": str(tmp_path / "checkpoint-1599.pth")})
