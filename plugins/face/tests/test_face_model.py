"""The AU metric and loss weighting against independent computations, MCM's channel mixing and
loss mask, occlusion → token masks, the padded visible-token encoding, and the student's
distillation terms and frozen parts."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from maekit_face.au_model import AUDetector, distillation_losses, weighted_bce
from maekit_face.aus import au_f1, au_weights, f1_table
from maekit_face.mcm import ChannelMixMask, ChannelMixMasker, MCMLoss, mcm, select_channels
from maekit_face.occlusion import BlockOcclusion, PatchOcclusion, occluded_tokens, visible_with_padding
from torch.nn import functional as F

from maekit.nn.patchify import patchify

TINY_ENCODER = dict(embed_dim=32, depth=2, num_heads=2)


def tiny_mcm(**options):
    return mcm(size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, encoder=TINY_ENCODER,
               decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, **options)


def test_f1_matches_scikit_learn_with_unknown_labels_left_out():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (200, 5))
    labels[rng.random((200, 5)) < 0.2] = -1
    labels[:, 4] = np.where(labels[:, 4] == -1, -1, 0)  # an AU never present
    scores = rng.random((200, 5))
    ours = au_f1(scores, labels)
    for k in range(5):
        known = labels[:, k] != -1
        assert ours[k] == pytest.approx(f1_score(labels[known, k], scores[known, k] >= 0.5, zero_division=0))
    table = f1_table(scores, labels, (1, 2, 4, 6, 7))
    assert table["avg_f1"] == pytest.approx(round(100 * ours.mean(), 2)) and table["AU4"] == round(100 * ours[2], 2)
    with pytest.raises(ValueError, match="must hold 1 .*found \\[2\\]"):
        au_f1(scores, np.full((200, 5), 2))


def test_au_weights_are_jaa_nets_inverse_rates_summing_to_k():
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, -1, 1], [0, 1, 1]])
    rates = np.array([2 / 4, 1 / 3, 4 / 4])
    expected = (1 / rates) / (1 / rates).sum() * 3
    assert np.allclose(au_weights(labels), expected) and au_weights(labels).sum() == pytest.approx(3)


def test_weighted_bce_leaves_unknown_labels_out():
    logits = torch.randn(4, 3)
    labels = torch.tensor([[1.0, 0, -1], [0, 1, 1], [-1, -1, 0], [1, 1, 1]])
    weights = torch.tensor([1.0, 2.0, 0.5])
    total, count = 0.0, 0
    for i, k in itertools.product(range(4), range(3)):
        if labels[i, k] >= 0:
            total += weights[k] * F.binary_cross_entropy_with_logits(logits[i, k], labels[i, k])
            count += 1
    assert torch.allclose(weighted_bce(logits, labels, weights), total / count)


def test_channel_mix_draws_every_subset_of_three_of_five_uniformly_and_repeatably():
    masker = ChannelMixMasker(0.75, channels=5, keep=3)
    model = tiny_mcm()
    tokens = model.tokenize(torch.randn(2000, 5, 16, 16))
    noise = torch.rand(masker.noise_shape(tokens), generator=torch.Generator().manual_seed(0))
    mask = masker(tokens, noise)
    assert isinstance(mask, ChannelMixMask) and (mask.kept_channels.sum(1) == 3).all()
    counts = {tuple(row.nonzero().flatten().tolist()): 0 for row in mask.kept_channels}
    for row in mask.kept_channels:
        counts[tuple(row.nonzero().flatten().tolist())] += 1
    assert set(counts) == set(itertools.combinations(range(5), 3))
    assert all(150 < c < 250 for c in counts.values())  # 200 expected each
    again = masker(tokens, noise)
    assert torch.equal(again.kept_channels, mask.kept_channels) and torch.equal(again.ids_keep, mask.ids_keep)
    assert mask.num_visible == 4  # int(16 · 0.25)
    rgb_only = masker(model.tokenize(torch.randn(3, 3, 16, 16)))
    assert rgb_only.kept_channels.all() and rgb_only.kept_channels.shape == (3, 3)


def test_encoder_sees_the_kept_channels_of_the_visible_patches():
    model = tiny_mcm().eval()
    images = torch.randn(3, 5, 16, 16)
    tokens = model.tokenize(images)
    mask = model.make_mask(tokens)
    visible = model.encoder_input(images, tokens, mask)
    for b in range(3):
        kept = mask.kept_channels[b].nonzero().flatten()
        expected = patchify(images[b:b + 1, kept], (4, 4))[0][mask.ids_keep[b]]
        assert torch.equal(visible.values[b], expected)
    # downstream: RGB patches as they are, and a fused batch cut to its RGB part
    assert torch.allclose(model.encode(images), model.encode(images[:, :3]))


def test_mcm_loss_counts_masked_patches_and_dropped_channels_everywhere():
    batch, num, area = 2, 4, 3
    masked = torch.tensor([[1.0, 0, 0, 1], [0, 0, 1, 0]])
    kept = torch.tensor([[True, False, True, True, False], [True, True, True, False, True]])
    mask = ChannelMixMask(torch.zeros(batch, 1, dtype=torch.long), torch.zeros(batch, num, dtype=torch.long), masked,
                          kept_channels=kept)
    outputs = {"rgb": (0, 1, 2), "dt": (3, 4)}
    pred = {name: torch.randn(batch, num, area * len(c)) for name, c in outputs.items()}
    target = {name: torch.randn(batch, num, area * len(c)) for name, c in outputs.items()}
    losses = MCMLoss(outputs)(pred, target, mask)
    for name, chans in outputs.items():
        total, count = 0.0, 0
        for b, n in itertools.product(range(batch), range(num)):
            for k, channel in enumerate(chans):
                if masked[b, n] == 1 or not kept[b, channel]:
                    values = slice(k, None, len(chans))  # (p, q, c) order: channel k every len(chans) values
                    total += ((pred[name][b, n, values] - target[name][b, n, values]) ** 2).sum()
                    count += area
        assert torch.allclose(losses[name], total / count)
    assert torch.allclose(losses["loss"], losses["rgb"] + losses["dt"])


def test_mcm_trains_and_rebuilds_each_modality():
    model = tiny_mcm()
    losses = model(torch.randn(4, 5, 16, 16))
    losses["loss"].backward()
    assert set(losses) == {"loss", "rgb", "dt"} and model.encoder.blocks[0].attn.qkv.weight.grad is not None
    rows = model.panels(torch.randn(2, 5, 16, 16), [0.5] * 5, [0.5] * 5)
    assert len(rows) == 2 and len(rows[0]) == len(model.panel_titles().columns) == 7
    with pytest.raises(ValueError, match="must rebuild each of the 5 channels once"):
        tiny_mcm(outputs={"rgb": (0, 1, 2)})
    with pytest.raises(ValueError, match="subsets must each name 3 distinct channels"):
        ChannelMixMasker(subsets=[(0, 1)])
    assert torch.equal(select_channels(torch.arange(12.0).view(1, 1, 12), 3, torch.tensor([[0, 2]])),
                       torch.tensor([[[0.0, 2, 3, 5, 6, 8, 9, 11]]]))


def test_occlusions_cover_what_they_say_and_become_token_masks():
    generator = torch.Generator().manual_seed(0)
    patches = PatchOcclusion(0.5)(3, 16, 16, 4, generator)
    assert (patches.view(3, -1).sum(1) == 8 * 16).all()  # 8 of 16 cells of 4×4 pixels
    tokens = occluded_tokens(patches, 4)
    assert (tokens.sum(1) == 8).all()
    block = BlockOcclusion(0.5)(5, 16, 16, 4, generator)
    assert (block.view(5, -1).sum(1) == 64).all()
    # a patch counts when more than half its pixels are covered
    pixels = torch.zeros(1, 4, 8, dtype=torch.bool)
    pixels[0, :, :2] = True  # half of the first patch: not occluded
    pixels[0, :3, 4:7] = True  # 9 of 16: occluded
    assert occluded_tokens(pixels, 4).tolist() == [[False, True]]


def test_padded_visible_tokens_encode_as_each_image_alone():
    model = tiny_mcm().eval()
    images = torch.randn(2, 3, 16, 16)
    tokens = model.tokenize(images)
    hidden = torch.zeros(2, 16, dtype=torch.bool)
    hidden[0, [1, 5, 6, 9, 15]] = True
    hidden[1, 3] = True
    padded, valid = visible_with_padding(tokens, hidden)
    assert valid.sum(1).tolist() == [11, 15]
    together = model.encoder(padded)
    for b in range(2):
        alone = model.encoder(tokens.take((~hidden[b]).nonzero().flatten()[None].expand(2, -1)))[b]
        assert torch.allclose(together[b, :1 + int(valid[b].sum())], alone, atol=1e-5)


def tiny_detector(**options) -> AUDetector:
    model = tiny_mcm()
    return AUDetector(model.patchifier, model.encoder, (1, 2, 4), dict(width=16, depth=1, num_heads=2), **options)


def test_student_distils_nodes_and_edges_and_keeps_its_encoder_and_teacher_frozen():
    torch.manual_seed(0)
    teacher = tiny_detector()
    student = tiny_detector(freeze_encoder=True, drop_occluded=True, train_occlusions=[dict(type="block", side=0.5)],
                            teacher=teacher, node_weight=0.5, edge_weight=2.0)
    batch = {"inputs": torch.randn(4, 3, 16, 16), "label": torch.tensor([[1.0, 0, -1]] * 4)}
    before = {k: v.clone() for k, v in student.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    optimiser = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=1.0)
    student.train()
    torch.manual_seed(1)
    losses = student(batch)
    losses["loss"].backward()
    optimiser.step()
    assert torch.allclose(losses["loss"], losses["au"] + 0.5 * losses["node"] + 2.0 * losses["edge"])
    after = student.state_dict()
    assert any(k.startswith("teacher.module.head.") for k in after)  # saved with the student, never trained
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith(("encoder.", "patchifier.", "teacher.")))
    assert not torch.equal(after["head.from_global.weight"], before["head.from_global.weight"])
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    # the terms against an independent computation
    nodes, target = torch.randn(2, 3, 8), torch.randn(2, 3, 8)

    def cosines(x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[[float(F.cosine_similarity(x[s, i], x[s, j], dim=0)) for j in range(3)] for i in range(3)]
                             for s in range(2)])

    terms = distillation_losses(nodes, target)
    assert torch.allclose(terms["node"], ((nodes - target) ** 2).mean())
    assert torch.allclose(terms["edge"], ((cosines(nodes) - cosines(target)) ** 2).mean(), atol=1e-6)


def test_pixel_baseline_zeroes_occluded_pixels_and_student_drops_their_tokens():
    torch.manual_seed(0)
    baseline, student = tiny_detector(), tiny_detector(drop_occluded=True)
    student.load_state_dict(baseline.state_dict())
    baseline.eval(), student.eval()
    images = torch.randn(2, 3, 16, 16)
    occluded = torch.zeros(2, 16, 16, dtype=torch.bool)
    occluded[:, :8] = True
    zeroed = images.masked_fill(occluded[:, None], 0.0)
    assert torch.allclose(baseline.classify({"inputs": images}, occluded), baseline.classify({"inputs": zeroed}))
    kept = torch.arange(8, 16)[None].expand(2, -1)
    latents = student.encoder(student.patchifier({"inputs": images}).take(kept))
    assert torch.allclose(student.classify({"inputs": images}, occluded), student.head.logits(student.head.nodes(latents)),
                          atol=1e-5)


def test_mapping_head_reads_padded_visible_tokens_as_each_image_alone():
    torch.manual_seed(0)
    detector = tiny_detector()
    detector.head = type(detector.head)(32, 3, width=16, depth=1, num_heads=2, mapping_depth=2).eval()
    latents = torch.randn(2, 1 + 6, 32)
    valid = torch.tensor([[True] * 6, [True, True, True, True, False, False]])
    together = detector.head.nodes(latents, valid)
    alone = detector.head.nodes(latents[1:, :5])
    assert torch.allclose(together[1], alone[0], atol=1e-5)
    assert torch.allclose(together[0], detector.head.nodes(latents[:1])[0], atol=1e-5)


def test_au_eval_settings_a_user_gets_wrong_fail_before_any_training():
    from maekit_face.evaluate import run_au_eval
    from maekit_face.occlusion import AUCrop

    from maekit.engine import load_config

    cfg = load_config("face_mae_demo")
    with pytest.raises(ValueError, match=r"one detector for folds \[1, 2\].*\{fold\}"):
        run_au_eval(cfg, None, "/nonexistent", "occlusion", teacher="teacher.pth", folds=(1, 2))
    cfg.au.conditions = {"clean": None, "blocks": {"type": "blok", "side": 0.5}}
    with pytest.raises(ValueError, match=r"au.conditions.blocks: occlusion type must be 'patch'"):
        run_au_eval(cfg, None, "/nonexistent")
    with pytest.raises(ValueError, match="mean/std have 3 values for an image of 5 channels"):
        AUCrop(8, mean=[0.5] * 3, std=[0.2] * 3)(torch.rand(5, 10, 10))
    with pytest.raises(ValueError, match="give mean and std together"):
        AUCrop(8, mean=[0.5] * 3)
