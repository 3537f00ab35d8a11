"""The score-guided masker (AMT, AttMask, MRA), thrown tokens, attention scores and their crop tracking."""
import math

import pytest
import torch

from maekit.data.views import MAEAugment, PlacedImage
from maekit.methods.mae import mae
from maekit.nn.masking import ScoreGuidedMasker
from maekit.nn.scores import cls_attention, scale_heads, scores_in_crop
from maekit.structures import Mask, Tokens


def _tokens(batch: int, length: int) -> Tokens:
    return Tokens(torch.randn(batch, length, 3), torch.zeros(batch, length, 2))


def test_amt_counts_and_order_masked_thrown_visible():
    masker = ScoreGuidedMasker(mask_ratio=0.45, throw_ratio=0.40, select="rank")
    scores = torch.arange(196.0).flip(0).expand(3, -1)  # token 0 scores highest
    mask = masker(_tokens(3, 196), noise=torch.rand(3, 196), scores=scores)
    assert mask.num_visible == 30 and (mask.predicted.sum(1) == 88).all() and (mask.thrown.sum(1) == 78).all()
    # by rank: the 88 highest are masked, the next 78 thrown, the 30 lowest visible
    assert mask.predicted[:, :88].all() and mask.thrown[:, 88:166].all() and (mask.masked[:, 166:] == 0).all()
    assert set(mask.ids_keep[0].tolist()) == set(range(166, 196))
    assert not (mask.thrown.bool() & (mask.masked == 0)).any()


def test_low_and_hint_variants():
    scores = torch.arange(100.0).flip(0)[None]
    low = ScoreGuidedMasker(mask_ratio=0.3, select="rank", prefer="low")(_tokens(1, 100), noise=torch.rand(1, 100), scores=scores)
    assert low.masked[0, 70:].all() and not low.masked[0, :70].any()
    hint = ScoreGuidedMasker(mask_ratio=0.3, select="rank", hint_ratio=0.05, hint_pool=0.1)
    for seed in range(5):
        mask = hint(_tokens(1, 100), noise=torch.rand(1, 200, generator=torch.Generator().manual_seed(seed)), scores=scores)
        revealed = [t for t in range(30) if mask.masked[0, t] == 0]
        assert len(revealed) == 5 and all(t < 10 for t in revealed)  # drawn from the top 10 %
        assert mask.masked[0, 10:30].all() and not mask.masked[0, 30:].any()
    assert hint.counts(100, mask_ratio=0.5) == (50, 0, 5)  # a per-batch ratio (AttMask's U(0.1, 0.5))
    with pytest.raises(ValueError, match="noise of their own"):
        ScoreGuidedMasker(mask_ratio=0.3, select="rank")(_tokens(1, 100), scores=scores, hint_ratio=0.05)


def test_hints_are_uniform_over_the_pool_even_when_sampling():
    masker = ScoreGuidedMasker(mask_ratio=0.5, select="sample", hint_ratio=0.05, hint_pool=0.4)  # 1 of the first 8
    draws = 16000
    noise = torch.rand(draws, 40, generator=torch.Generator().manual_seed(3))
    mask = masker(_tokens(draws, 20), noise=noise)
    order = masker.order(torch.ones(draws, 20), noise[:, :20])
    revealed_place = (mask.masked.gather(1, order[:, :8]) == 0).float().argmax(dim=1)
    share = torch.bincount(revealed_place, minlength=8).float() / draws
    assert torch.allclose(share, torch.full((8,), 1 / 8), atol=0.015)


def test_sampling_follows_the_score_law():
    """First token drawn ∝ score, and the (first, second) pair as successive draws without
    replacement (torch.multinomial's law), over many seeded draws."""
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    masker = ScoreGuidedMasker(mask_ratio=0.25, select="sample")
    draws = 40000
    noise = torch.rand(draws, 4, generator=torch.Generator().manual_seed(0))
    order = masker.order(weights.expand(draws, -1), noise)
    first = torch.bincount(order[:, 0], minlength=4).float() / draws
    expected = weights / weights.sum()
    assert torch.allclose(first, expected, atol=4 * math.sqrt(0.25 / draws))
    pair = (order[:, 0] == 3) & (order[:, 1] == 2)
    p_pair = 0.4 * 3 / 6  # P(4 first) · P(3 next | 4 gone)
    assert abs(pair.float().mean().item() - p_pair) < 4 * math.sqrt(p_pair * (1 - p_pair) / draws)
    # the masked tokens of a mask are the first drawn
    mask = masker(_tokens(draws, 4), noise=noise, scores=weights.expand(draws, -1))
    assert torch.equal(mask.masked.argmax(dim=1), order[:, 0])


def test_without_scores_every_token_is_equally_likely():
    masker = ScoreGuidedMasker(mask_ratio=0.5, select="sample")
    mask = masker(_tokens(20000, 8), noise=torch.rand(20000, 8, generator=torch.Generator().manual_seed(1)))
    share = mask.masked.mean(0)
    assert torch.allclose(share, torch.full((8,), 0.5), atol=0.02)


@pytest.mark.parametrize("kwargs, message", [(dict(mask_ratio=0.6, throw_ratio=0.4), "one token stays visible"),
                                             (dict(select="top"), "select"), (dict(prefer="middle"), "prefer"),
                                             (dict(hint_ratio=0.2, hint_pool=0.1), "hint_ratio")])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScoreGuidedMasker(**kwargs)


def test_scores_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="scores must have shape"):
        ScoreGuidedMasker()(_tokens(2, 16), scores=torch.rand(2, 15))


def test_thrown_tokens_never_reach_decoder_or_loss():
    torch.manual_seed(0)
    model = mae(None, img_size=32, patch_size=8, in_chans=1, encoder_name="vit_tiny_patch16_224",
                encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    model.masker = ScoreGuidedMasker(mask_ratio=0.5, throw_ratio=0.25)
    images = torch.randn(2, 1, 32, 32, requires_grad=True)
    noise = torch.rand(2, 16)
    out = model.run_steps(images, noise=noise)
    thrown = out.mask.thrown
    assert (thrown.sum(1) == 4).all() and (out.pred[thrown] == 0).all()
    # the decoder's blocks ran over prefix + the 12 kept positions only (written out here)
    decoder = model.decoder
    x = decoder.with_mask_tokens(out.latents, out.mask) + decoder.position_embedding(out.tokens)
    kept = torch.stack([torch.cat([torch.tensor([0]), torch.nonzero(~row).flatten() + 1]) for row in thrown])
    direct = decoder.pred(decoder.norm(decoder.blocks(torch.stack([x[b, kept[b]] for b in range(2)]))))[:, 1:]
    assert torch.allclose(out.pred[~thrown].view(2, 12, -1), direct, atol=1e-6)
    model(images, noise=noise)["loss"].backward()
    # the gradient reaches the input only through the visible patches and the predicted patches' targets
    grad = model.patchifier(images.grad.abs()).values.sum(-1)
    assert (grad[thrown] == 0).all() and (grad[~thrown] > 0).all()
    # and changing the thrown patches' pixels changes nothing
    changed = images.detach().clone()
    patches = model.patchifier(changed)
    edited = patches.values.clone()
    edited[thrown] += 5.0
    from maekit.nn.patchify import unpatchify
    changed = unpatchify(edited, (4, 4), (8, 8))
    assert torch.allclose(model(changed, noise=noise)["loss"], model(images.detach(), noise=noise)["loss"], atol=1e-6)


def test_thrown_tokens_are_refused_where_they_cannot_be_dropped():
    from maekit.model import MaskTokenModel
    from maekit.nn.decoder import CrossAttentionDecoder

    tokens = _tokens(1, 16)
    mask = ScoreGuidedMasker(mask_ratio=0.5, throw_ratio=0.25)(tokens)
    with pytest.raises(ValueError, match="cannot drop thrown"):
        MaskTokenModel.encoder_input(None, None, tokens, mask)  # type: ignore[arg-type]
    decoder = CrossAttentionDecoder(8, 4, grid_size=4, embed_dim=8, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="cannot drop thrown"):
        decoder(torch.randn(1, 5, 8), mask, tokens, context=torch.randn(1, 5, 8))


def test_a_cosine_over_the_run_learns_its_length():
    from maekit.nn.schedules import CosineSchedule, ScheduledValues

    schedule = CosineSchedule(0.996, 1.0, None)
    assert ScheduledValues(m=schedule)["m"] == 0.996
    with pytest.raises(ValueError, match="no length until training starts"):
        schedule(5)
    schedule.fit_run(200)
    assert schedule(100) == pytest.approx(0.998) and schedule(200) == 1.0
    fixed = CosineSchedule(0.0, 1.0, 10)
    fixed.fit_run(200)
    assert fixed.length == 10


def test_loss_weights_and_predicted():
    from maekit.nn.losses import MaskedMSELoss

    mask = Mask.from_masked(torch.tensor([[1, 1, 0, 0]]))
    pred, target = torch.zeros(1, 4, 1), torch.tensor([[[1.0], [3.0], [7.0], [9.0]]])
    assert MaskedMSELoss()(pred, target, mask)["mse"] == pytest.approx((1 + 9) / 2)
    mask.weights = torch.tensor([[3.0, 1.0, 5.0, 5.0]])
    assert MaskedMSELoss()(pred, target, mask)["mse"] == pytest.approx((3 * 1 + 9) / 4)
    mask.thrown = torch.tensor([[False, True, False, False]])
    assert mask.predicted.tolist() == [[1, 0, 0, 0]]
    assert MaskedMSELoss()(pred, target, mask)["mse"] == pytest.approx(1.0)
    assert MaskedMSELoss(reduction="all")(pred, target, mask)["mse"] == pytest.approx((3 + 5 * 49 + 5 * 81) / 13)


def test_cls_attention_is_the_cls_softmax_row():
    torch.manual_seed(0)
    model = mae(None, img_size=32, patch_size=8, in_chans=1, encoder_name="vit_tiny_patch16_224",
                encoder=dict(embed_dim=32, depth=2, num_heads=4), decoder_depth=1)
    tokens = model.patchifier(torch.randn(3, 1, 32, 32))
    encoder = model.encoder
    # independent: run the blocks by hand and write the last block's attention out
    x = encoder.block_inputs(tokens)
    x = encoder.blocks[0](x)
    block = encoder.blocks[1]
    h = block.norm1(x)
    q, k, _ = block.attn.qkv(h).reshape(3, 17, 3, 4, 8).permute(2, 0, 3, 1, 4)
    weights = ((q @ k.transpose(-2, -1)) / math.sqrt(8)).softmax(-1)
    rows = weights[:, :, 0, 1:]
    assert torch.allclose(cls_attention(encoder, tokens, per_head_scaling=False), rows.mean(1), atol=1e-5)
    low, high = rows.amin(-1, keepdim=True), rows.amax(-1, keepdim=True)
    assert torch.allclose(cls_attention(encoder, tokens), ((rows - low) / (high - low)).mean(1), atol=1e-5)
    assert torch.equal(scale_heads(torch.ones(1, 2, 5)), torch.zeros(1, 2, 5))  # constant head: no NaN


def test_scores_follow_the_crop_and_flip_of_the_image():
    """The map pushed through scores_in_crop equals the map itself cropped, resized and flipped as an
    image by the same transform, then averaged per patch."""
    torch.manual_seed(0)
    source = torch.rand(1, 60, 80)  # a smooth-ish map at the source's resolution
    source = torch.nn.functional.avg_pool2d(source[None], 5, 1, 2)[0]
    augment = MAEAugment(size=32, scale=(0.3, 0.6), mean=[0.0], std=[1.0], track_geometry=True)
    flips = set()
    for _ in range(8):
        placed = augment(source)
        assert isinstance(placed, PlacedImage)
        flips.add(bool(placed.geometry[4]))
        direct = torch.nn.functional.avg_pool2d(placed.image[None], 8)[0, 0].flatten()  # 4×4 patches of 8 px
        tracked = scores_in_crop(source, placed.geometry[None], (4, 4), samples_per_patch=8)[0]
        assert torch.allclose(tracked, direct, atol=0.02)
    assert flips == {True, False}


def test_a_hot_cell_lands_where_the_crop_puts_it():
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, 3] = 1.0  # top-right cell of the source
    right_half = torch.tensor([[0.0, 0.5, 1.0, 0.5, 0.0]])  # crop the right half, no flip
    scores = scores_in_crop(maps, right_half, (4, 2), samples_per_patch=4).view(4, 2)
    assert scores.argmax() == 1  # row 0, column 1
    flipped = scores_in_crop(maps, right_half.clone().index_fill_(1, torch.tensor([4]), 1.0), (4, 2)).view(4, 2)
    assert flipped.argmax() == 0  # mirrored
    with pytest.raises(ValueError, match="geometry B×5"):
        scores_in_crop(maps, torch.zeros(1, 4), (2, 2))


def test_augmented_view_carries_the_geometry():
    from maekit.data.images import ArrayDataset
    from maekit.data.views import AugmentedView

    view = AugmentedView(ArrayDataset(torch.rand(3, 1, 20, 20)), MAEAugment(16, track_geometry=True, mean=[0.5], std=[0.5]))
    sample = view[4]
    assert sample["inputs"].shape == (1, 16, 16) and sample["geometry"].shape == (5,)
    assert torch.equal(view[4]["geometry"], sample["geometry"])  # seeded by position
