"""Teachers, schedules, feature targets and the block-plus-random masker (core's concepts for
methods that learn from a teacher), each against an independent computation."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch

from maekit.model import MaskedAutoencoder
from maekit.nn.masking import BlockPlusRandomMasker, beit_block_mask, masked_folds
from maekit.nn.schedules import CosineSchedule, PiecewiseSchedule, ScheduledValues, build_schedule, set_schedule_progress
from maekit.nn.targets import FeatureTarget, NamedTargets, NormPixelTarget, normalize_features
from maekit.nn.teachers import Teacher, frozen_teacher, update_teachers
from maekit.structures import Mask, Tokens
from tests.conftest import tiny_mae


def test_cosine_schedule_is_sdaes_cosine_scheduler():
    # util/cosine_scheduler.py of AbrahamYabo/SdAE with niter_per_ep=1, no warm-up
    epochs = 7
    steps = np.arange(epochs)
    reference = 0.99 + 0.5 * (0.96 - 0.99) * (1 + np.cos(np.pi * steps / len(steps)))
    schedule = CosineSchedule(0.96, 0.99, epochs, by_epoch=True)
    ours = [schedule(iteration, iters_per_epoch=5) for iteration in range(0, 35, 5)]
    assert np.allclose(ours, reference, rtol=0, atol=1e-12)
    assert schedule(4, 5) == schedule(0, 5)  # constant within an epoch


def test_piecewise_schedule_is_bootmaes_momentum_and_ramp():
    def adjust_ema_momentum(epoch):  # utils.py of LightDXY/BootMAE, with --model_ema_dynamic
        if epoch < 100:
            return 0.999 + epoch / 100 * (0.9999 - 0.999)
        return 0.9999 + min(300, epoch - 100) / 300 * (0.99999 - 0.9999)

    momentum = PiecewiseSchedule([(0, 0.999), (100, 0.9999), (400, 0.99999)], by_epoch=True)
    for epoch in (0, 1, 50, 99, 100, 101, 250, 399, 400, 500, 800):
        assert math.isclose(momentum.at(epoch), adjust_ema_momentum(epoch), rel_tol=0, abs_tol=1e-12), epoch
    epochs = 40  # the feature weight: min(4λ(e+1)/E, λ) with λ = 1
    ramp = PiecewiseSchedule([(-1, 0.0), (epochs / 4 - 1, 1.0)], by_epoch=True)
    for epoch in range(epochs):
        assert math.isclose(ramp.at(epoch), min(4 * (epoch + 1) / epochs, 1.0), abs_tol=1e-12)


def test_schedules_refuse_bad_specs_and_need_epoch_lengths():
    assert build_schedule(0.5)(1000) == 0.5
    with pytest.raises(ValueError, match="type one of constant, cosine, piecewise"):
        build_schedule({"type": "cosin", "start": 0, "end": 1, "length": 2})
    with pytest.raises(ValueError, match="steps must increase"):
        PiecewiseSchedule([(0, 1.0), (0, 2.0)])
    with pytest.raises(ValueError, match="iters_per_epoch"):
        CosineSchedule(0.1, 0.2, 3, by_epoch=True)(5, None)
    with pytest.raises(ValueError, match="bogus"):
        build_schedule({"type": "constant", "value": 1.0, "bogus": 2})


def test_scheduled_values_follow_the_iteration_and_are_in_the_state_dict():
    holder = torch.nn.Module()
    holder.weights = ScheduledValues(feature=PiecewiseSchedule([(0, 0.0), (10, 1.0)]), pixel=1.0)
    set_schedule_progress(holder, 5)
    assert holder.weights["feature"] == 0.5 and holder.weights["pixel"] == 1.0
    assert "weights.current" in holder.state_dict()
    with pytest.raises(KeyError, match="known: feature, pixel"):
        holder.weights["features"]


def _tiny_encoder_pair():
    model = tiny_mae()
    teacher = Teacher(copy.deepcopy(model.encoder), "ema", PiecewiseSchedule([(0, 0.5), (2, 0.9)], by_epoch=True),
                      update_every="iter", student="encoder")
    model.teacher = teacher
    return model, teacher


def test_ema_updates_match_a_direct_computation_over_several_steps_with_the_schedule():
    model, teacher = _tiny_encoder_pair()
    names = [name for name, _ in model.encoder.named_parameters()]
    expected = {name: p.detach().double().clone() for name, p in teacher.module.named_parameters()}
    iters_per_epoch = 3
    for iteration in range(8):
        with torch.no_grad():  # an "optimiser step": the student moves
            for p in model.encoder.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        used = update_teachers(model, iteration, iters_per_epoch)
        epoch = iteration // iters_per_epoch
        m = 0.5 + min(epoch, 2) / 2 * (0.9 - 0.5)
        assert used == {"teacher": pytest.approx(m)}
        student = dict(model.encoder.named_parameters())
        for name in names:
            expected[name] = m * expected[name] + (1 - m) * student[name].detach().double()
    for name, p in teacher.module.named_parameters():
        assert torch.allclose(p.double(), expected[name], atol=1e-6), name
    assert int(teacher.updates) == 8


def test_teachers_updated_per_epoch_move_only_at_epoch_ends():
    model, _ = _tiny_encoder_pair()
    model.teacher = Teacher(copy.deepcopy(model.encoder), "ema", 0.5, update_every="epoch")
    moved = [bool(update_teachers(model, iteration, iters_per_epoch=4)) for iteration in range(8)]
    assert moved == [False, False, False, True, False, False, False, True]
    # with gradient accumulation (no optimiser step at odd iterations here) the epoch-end update
    # still happens, while a per-iteration teacher follows the steps only
    epoch_end = [bool(update_teachers(model, iteration, 3, stepped=iteration % 2 == 1)) for iteration in range(6)]
    assert epoch_end == [False, False, True, False, False, True]
    model.teacher = Teacher(copy.deepcopy(model.encoder), "ema", 0.5, update_every="iter")
    per_step = [bool(update_teachers(model, iteration, 3, stepped=iteration % 2 == 1)) for iteration in range(6)]
    assert per_step == [False, True, False, True, False, True]
    with pytest.raises(ValueError, match="counted in epochs"):
        Teacher(copy.deepcopy(model.encoder), "ema", CosineSchedule(0.9, 0.99, 10), update_every="epoch")


def test_a_teacher_is_frozen_in_eval_mode_and_outside_the_optimiser(tmp_path):
    from maekit.engine.optim import NoDecayOptimWrapperConstructor

    model, teacher = _tiny_encoder_pair()
    model.train()
    assert not teacher.module.training and not any(p.requires_grad for p in teacher.parameters())
    teacher_ids = {id(p) for p in teacher.parameters()}
    for paramwise in ({}, {"norm_decay_mult": 0.0}):
        constructor = NoDecayOptimWrapperConstructor(dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05)),
                                                     paramwise)
        optimizer = constructor(model).optimizer
        in_groups = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert in_groups and not in_groups & teacher_ids, paramwise
    # exported encoders hold the student only
    from safetensors.torch import load_file

    from maekit.io.export import export_encoder

    weights, _ = export_encoder(model, tmp_path)
    assert set(load_file(weights)) == set(model.encoder.state_dict())


def test_frozen_teachers_load_strictly_and_record_their_source(tmp_path):
    from maekit.io.checkpoint import load_state_dict, save_state_dict

    encoder = tiny_mae().encoder
    path = save_state_dict({f"module.{k}": v for k, v in encoder.state_dict().items()}, tmp_path / "teacher.safetensors")
    spec = dict(type="vit_encoder", model_name="vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=64,
                depth=2, num_heads=4)
    teacher = frozen_teacher(spec, path, prefixes=("module.",))
    assert teacher.mode == "frozen" and "sha256" in teacher.source
    for name, value in encoder.state_dict().items():
        assert torch.equal(teacher.module.state_dict()[name], value)
    # the MAE reference's own layout (its pre-training checkpoint, decoder included): the encoder is taken
    from maekit.io.convert import maekit_to_official

    official = save_state_dict(maekit_to_official(tiny_mae().state_dict()), tmp_path / "official.safetensors")
    from_official = frozen_teacher(spec, official, convert="official")
    assert torch.equal(from_official.module.blocks[1].mlp.fc2.weight, load_state_dict(official)["blocks.1.mlp.fc2.weight"])
    wrong = save_state_dict({"blocks.0.bogus": torch.zeros(1)}, tmp_path / "wrong.safetensors")
    with pytest.raises(ValueError, match="does not fit the teacher"):
        frozen_teacher(spec, wrong)
    # a config's teacher section (MVD, DMAE, TinyMIM): the same file, errors naming the method's section
    from maekit.nn.teachers import image_mae_teacher

    section = dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=64, depth=2, num_heads=4),
                   checkpoint=str(official), layout="official")
    built = image_mae_teacher(section, 32, 8, 3, "dmae teacher")
    assert torch.equal(built.module.blocks[1].mlp.fc2.weight, load_state_dict(official)["blocks.1.mlp.fc2.weight"])
    for bad, message in (({"layuot": "official"}, "dmae teacher: unknown key 'layuot'"),
                         ({"checkpoint": ""}, "dmae teacher needs checkpoint=<file>"),
                         ({"layout": "timm"}, "dmae teacher layout must be one of official, maekit, mocov3")):
        with pytest.raises(ValueError, match=message):
            image_mae_teacher({**section, **bad}, 32, 8, 3, "dmae teacher")


def test_feature_targets_read_the_tap_and_norm_as_independent_computations():
    model = tiny_mae()
    teacher = Teacher(copy.deepcopy(model.encoder))
    tokens = model.tokenize(torch.randn(2, 3, 32, 32))
    last_block = teacher.module.forward_intermediates(tokens, [-1]).features[2][:, 1:]
    mean, var = last_block.mean(-1, keepdim=True), last_block.var(-1, unbiased=False, keepdim=True)
    layernormed = FeatureTarget(teacher, tap=-1, norm="layernorm")(tokens)
    assert torch.allclose(layernormed, (last_block - mean) / torch.sqrt(var + 1e-6), atol=1e-5)
    output = teacher.module(tokens)[:, 1:]
    standardized = FeatureTarget(teacher, tap="output", norm="standardize")(tokens)
    expected = (output - output.mean(-1, keepdim=True)) / (output.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert torch.allclose(standardized, expected, atol=1e-5)
    assert torch.allclose(normalize_features(output, "l2").norm(dim=-1), torch.ones(2, 16))
    with pytest.raises(ValueError, match="feature norm must be one of"):
        FeatureTarget(teacher, norm="layer_norm")


def test_folded_feature_targets_run_each_fold_through_the_teacher_with_its_own_cls():
    model = tiny_mae(mask_ratio=0.75)
    teacher = Teacher(copy.deepcopy(model.encoder))
    tokens = model.tokenize(torch.randn(2, 3, 32, 32))
    mask = model.make_mask(tokens)  # 12 of 16 removed
    target = FeatureTarget(teacher, tap="output", feed="folds", num_folds=3)
    rows = target(tokens, None, mask)
    removed_order = torch.argsort(mask.ids_restore, dim=1)[:, 4:]
    for b in range(2):
        for fold in range(3):
            ids = removed_order[b, fold * 4:(fold + 1) * 4]
            alone = teacher.module(Tokens(tokens.values[b:b + 1, ids], tokens.coords[b:b + 1, ids], tokens.meta))[0, 1:]
            assert torch.allclose(rows[b, ids], alone, atol=1e-5)
    visible = mask.ids_keep
    assert torch.equal(rows.gather(1, visible.unsqueeze(-1).expand(-1, -1, rows.shape[-1])),
                       torch.zeros(2, 4, rows.shape[-1]))
    assert masked_folds(mask, 3).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="3 folds of 5 need 15"):
        masked_folds(mask, 3, 5)


def test_a_method_with_a_masked_feature_target_gets_the_mask_and_trains():
    model = tiny_mae(mask_ratio=0.75)
    teacher = Teacher(copy.deepcopy(model.encoder), "ema", 0.9)
    method = MaskedAutoencoder(patchifier=model.patchifier, masker=model.masker, encoder=model.encoder,
                               decoder=dict(type="mae_decoder", encoder_dim=64, out_dim=64, grid_size=4, embed_dim=32,
                                            depth=1, num_heads=4),
                               target=FeatureTarget(teacher, tap="output", feed="folds", num_folds=2), loss="masked_mse")
    losses = method({"inputs": torch.randn(2, 3, 32, 32)})
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and teacher.module.blocks[0].attn.qkv.weight.grad is None


def test_per_channel_norm_pixels_are_bootmaes_image_domain_normalisation():
    images = torch.randn(2, 3, 32, 32)
    patch = 8
    model = tiny_mae()
    tokens = model.tokenize(images)
    target = NormPixelTarget(eps=1e-5, unbiased=False, per_channel=True)
    # run_pretraining.py of LightDXY/BootMAE, in the image domain
    bz, _, height, width = images.shape
    win = height // patch
    patches = images.reshape(bz, 3, win, patch, win, patch).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, patch, patch)
    mean = patches.mean(dim=[2, 3], keepdim=True)
    std = torch.sqrt(patches.var(dim=[2, 3], keepdim=True, unbiased=False) + 1e-5)
    normed = ((patches - mean) / std).reshape(bz, win * win, 3, patch, patch).permute(0, 1, 3, 4, 2).flatten(2)
    assert torch.allclose(target(tokens), normed, atol=1e-5)
    assert torch.allclose(target.to_values(target(tokens), tokens), tokens.values, atol=1e-5)
    named = NamedTargets({"pixels": target}, picture="pixels")
    assert torch.allclose(named.to_values(named(tokens), tokens), tokens.values, atol=1e-5)


def test_beit_block_masks_never_exceed_their_target_and_cover_rectangles():
    for seed in range(20):
        mask = beit_block_mask((14, 14), 120, random.Random(seed), 16, 60)
        assert 16 <= int(mask.sum()) <= 120


def test_block_plus_random_masking_removes_exactly_147_of_196_with_at_most_3_block_tokens_kept():
    masker = BlockPlusRandomMasker()
    tokens = Tokens(torch.randn(16, 196, 3), torch.zeros(16, 196, 2), {"grid_size": (14, 14)})
    noise = torch.rand(16, 197)
    mask = masker(tokens, noise)
    assert torch.equal(mask.masked.sum(1), torch.full((16,), 147.0)) and mask.ids_keep.shape == (16, 49)
    for row in range(16):  # redo the block mask from the same seed: at most 3 of its tokens stay visible
        rng = random.Random(int(noise[row, -1].item() * 2**31))
        block = beit_block_mask((14, 14), 120, rng, 16, 60).flatten()
        roll = rng.randint(0, 3)  # the reference's roll, the next draw
        assert int(block[mask.ids_keep[row]].sum()) == roll  # the roll brings that many block tokens in
    again = masker(tokens, noise)
    assert torch.equal(again.ids_keep, mask.ids_keep)  # the noise decides everything
    with pytest.raises(ValueError, match="needs tokens on a grid"):
        masker(Tokens(torch.randn(1, 10, 3), torch.zeros(1, 10, 2), {}))


def test_mask_object_from_block_plus_random_is_consistent():
    masker = BlockPlusRandomMasker(mask_ratio=0.75)
    tokens = Tokens(torch.randn(3, 64, 3), torch.zeros(3, 64, 2), {"grid_size": (8, 8)})
    mask: Mask = masker(tokens)
    assert torch.equal(mask.masked.sum(1), torch.full((3,), 48.0))
    assert torch.equal(mask.masked.gather(1, mask.ids_keep), torch.zeros(3, 16))


def test_moco_v3_checkpoints_load_as_frozen_teachers_without_their_projection_head(tmp_path):
    # facebookresearch/moco-v3's checkpoint: {"state_dict": {"module.base_encoder.<timm key>": ...,
    # "module.base_encoder.head.*" (projection MLP), "module.momentum_encoder.*", "module.predictor.*"}}
    import timm

    from maekit.nn.teachers import image_mae_teacher

    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                            num_classes=0)
    head = {"head.0.weight": torch.randn(32, 64), "head.1.weight": torch.ones(32), "head.3.weight": torch.randn(16, 32)}
    encoder = {**vit.state_dict(), **head}
    state = {**{f"module.base_encoder.{k}": v for k, v in encoder.items()},
             **{f"module.momentum_encoder.{k}": v + 1 for k, v in encoder.items()},
             "module.predictor.0.weight": torch.randn(32, 16)}
    path = tmp_path / "vit-s-300ep.pth.tar"
    torch.save({"epoch": 300, "arch": "vit_small", "state_dict": state}, path)
    section = dict(encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=64, depth=2, num_heads=4),
                   checkpoint=str(path), layout="mocov3")
    teacher = image_mae_teacher(section, 32, 8, 3, "mimco teacher")
    for key, value in vit.state_dict().items():
        assert torch.equal(teacher.module.state_dict()[key], value), key  # the base encoder, not the momentum one
    official = tmp_path / "mae.safetensors"
    from maekit.io.checkpoint import save_state_dict

    save_state_dict({"cls_token": torch.zeros(1, 1, 64)}, official)
    with pytest.raises(ValueError, match="not a MoCo v3 ViT checkpoint"):
        image_mae_teacher({**section, "checkpoint": str(official)}, 32, 8, 3, "mimco teacher")
