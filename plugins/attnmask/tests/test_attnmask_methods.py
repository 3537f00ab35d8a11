"""AttMask's masks and iBOT's loss against direct computations, MRA's augmentation, the head."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from maekit.registry import build
from maekit.structures import Mask

ENCODER = dict(size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1,
               encoder=dict(embed_dim=32, depth=2, num_heads=2))


def tiny_attmask(**options):
    torch.manual_seed(0)
    return build("model", dict(type="attmask", **ENCODER, out_dim=64, head_hidden_dim=32, head_bottleneck_dim=16,
                               **options))


def views(batch: int = 4, local: int = 2) -> dict:
    crops = {"global_1": torch.randn(batch, 1, 16, 16), "global_2": torch.randn(batch, 1, 16, 16)}
    crops.update({f"local_{i}": torch.randn(batch, 1, 8, 8) for i in range(local)})
    return {"inputs": crops["global_1"], "views": crops}


@pytest.mark.parametrize("mode", ["high", "low", "hint", "random"])
def test_attmask_masks_follow_the_teachers_attention(mode):
    # hints from the top half (not 10 %): 16 patches would reveal int(0.1·r′·16) = 0
    model = tiny_attmask(mode=mode, mask_probability=1.0, hint_max=0.5)
    model.draws.set_progress(3, iters_per_epoch=5)
    ratio, hint = model.draws["mask_ratio"], 0.5 * model.draws["hint_ratio"]
    assert 0.1 <= ratio <= 0.5
    batch = views(6)
    tokens = model.tokenize(torch.cat([batch["views"]["global_1"], batch["views"]["global_2"]]))
    attention = model.make_target(tokens, batch)["attention"]
    mask = model.mask_from_attention(tokens, attention, None)
    count = int(ratio * 16)
    order = torch.argsort(attention, dim=1, descending=True)
    for row in range(12):
        masked = set(torch.nonzero(mask.masked[row]).flatten().tolist())
        if mode == "high":
            assert masked == set(order[row, :count].tolist())
        elif mode == "low":
            assert masked == set(order[row, -count:].tolist())
        elif mode == "hint":  # High, then int(hint_max·r′·N) of the top int(hint_max·N) shown again
            revealed = set(order[row, :count].tolist()) - masked
            assert masked <= set(order[row, :count].tolist()) and len(revealed) == min(int(hint * 16), count) >= 1
            assert revealed <= set(order[row, : min(int(0.5 * 16), count)].tolist())
        else:
            assert len(masked) == count
    # the teacher's score is its last block's class-token attention, heads averaged, not rescaled
    found = model.target.encoder.module.forward_intermediates(tokens, [-1], attention=True)
    assert torch.allclose(attention, found.attention[2][:, :, 0, 1:].mean(1))


def test_each_crop_is_masked_with_probability_one_half():
    model = tiny_attmask()
    model.draws.set_progress(0, iters_per_epoch=5)
    tokens = model.tokenize(torch.randn(2 * 500, 1, 16, 16))
    mask = model.mask_from_attention(tokens, torch.rand(1000, 16), None)
    masked_rows = mask.masked.sum(1) > 0
    assert abs(masked_rows.float().mean().item() - 0.5) < 0.06
    assert mask.variable_count  # unmasked crops: mask tokens inside the encoder take any count


def test_one_ratio_per_iteration_the_same_after_a_resume():
    from maekit_attnmask.ibot import UniformPerStep

    draw = UniformPerStep(0.1, 0.5, seed=0)
    values = [draw.at(step) for step in range(2000)]
    assert values == [UniformPerStep(0.1, 0.5, seed=0).at(step) for step in range(2000)]
    assert min(values) >= 0.1 and max(values) <= 0.5 and abs(sum(values) / 2000 - 0.3) < 0.01
    assert UniformPerStep(0.1, 0.5, seed=1).at(5) != values[5]


def test_ibot_loss_matches_a_direct_computation():
    from maekit_attnmask.ibot import IBOTLoss

    torch.manual_seed(0)
    loss = IBOTLoss(out_dim=5, warmup_epochs=30)
    loss.center.copy_(torch.randn(1, 5))
    loss.patch_center.copy_(torch.randn(1, 1, 5))
    loss.temperatures.set_progress(29 * 2, iters_per_epoch=2)  # epoch 29: the end of the warm-up
    assert loss.temperatures["cls"] == pytest.approx(0.07)
    loss.temperatures.set_progress(10 * 2, iters_per_epoch=2)
    temp = 0.04 + 10 * 0.03 / 29  # numpy.linspace(0.04, 0.07, 30)[10]
    assert loss.temperatures["cls"] == pytest.approx(temp)
    student_cls, student_patch = torch.randn(4, 3, 5), torch.randn(2, 3, 6, 5)  # 2 globals + 2 locals, batch 3
    teacher_cls, teacher_patch = torch.randn(2, 3, 5), torch.randn(2, 3, 6, 5)
    masked = torch.zeros(6, 6)
    masked[0, :3] = 1
    masked[4, :1] = 1  # crop 2, image 2
    center, patch_center = loss.center.clone(), loss.patch_center.clone()
    out = loss({"cls": student_cls, "patch": student_patch}, {"cls": teacher_cls, "patch": teacher_patch},
               Mask.from_masked(masked))
    cls_terms, patch_terms = [], []
    for q in range(2):
        t = F.softmax((teacher_cls[q] - center) / temp, -1)
        for v in range(4):
            if v != q:
                cls_terms.append(torch.stack([-(t[b] * F.log_softmax(student_cls[v, b] / 0.1, -1)).sum() for b in range(3)]).mean())
        tp = F.softmax((teacher_patch[q] - patch_center) / temp, -1)
        per_image = []
        for b in range(3):
            m = masked[q * 3 + b]
            ce = -(tp[b] * F.log_softmax(student_patch[q, b] / 0.1, -1)).sum(-1)
            per_image.append((ce * m).sum() / max(m.sum(), 1.0))
        patch_terms.append(torch.stack(per_image).mean())
    expected_cls, expected_patch = torch.stack(cls_terms).mean(), torch.stack(patch_terms).mean()
    assert torch.allclose(out["cls_loss"], expected_cls, atol=1e-5) and torch.allclose(out["patch_loss"], expected_patch, atol=1e-5)
    assert torch.allclose(out["loss"], expected_cls + expected_patch, atol=1e-5)
    # the centres moved after the loss, by 0.9 / 0.1 of the teacher's batch means
    assert torch.allclose(loss.center, 0.9 * center + 0.1 * teacher_cls.reshape(6, 5).mean(0, keepdim=True))
    assert torch.allclose(loss.patch_center, 0.9 * patch_center + 0.1 * teacher_patch.mean(2).reshape(6, 5).mean(0).view(1, 1, 5))


def test_head_last_layer_norm_and_freeze():
    from maekit_attnmask.ibot import IBOTHead

    torch.manual_seed(0)
    head = IBOTHead(8, out_dim=12, hidden_dim=16, bottleneck_dim=4, norm_last_layer=True)
    rows = head.last_layer.weight.norm(dim=1)
    assert torch.allclose(rows, torch.ones(12), atol=1e-6)  # weight norm, magnitude fixed at 1
    assert not head.last_layer.parametrizations.weight.original0.requires_grad
    head(torch.randn(3, 8), train_last_layer=False).sum().backward()
    assert torch.count_nonzero(head.last_layer.parametrizations.weight.original1.grad) == 0  # frozen: a zero gradient
    assert head.mlp[0].weight.grad.abs().sum() > 0
    copy.deepcopy(head)(torch.randn(2, 8))  # the EMA teacher is a deep copy


def test_attmask_step_trains_the_student_only_and_freezes_the_last_layer_first():
    model = tiny_attmask(norm_last_layer=False)
    model.train()
    model.draws.set_progress(0, iters_per_epoch=5)  # epoch 0: the head's last layer frozen
    losses = model(views())
    assert {"loss", "cls_loss", "patch_loss", "mask_ratio", "masked_share"} <= set(losses)
    losses["loss"].backward()
    assert all(p.grad is None for p in model.target.parameters())
    last = model.decoder.last_layer.parametrizations.weight
    assert torch.count_nonzero(last.original1.grad) == 0 and torch.count_nonzero(last.original0.grad) == 0
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    # an AdamW step (weight decay included) leaves the effective last layer where it was
    weight = model.decoder.last_layer.weight.detach().clone()
    torch.optim.AdamW([last.original1], lr=1e-2, weight_decay=0.05).step()
    assert torch.allclose(model.decoder.last_layer.weight, weight, atol=1e-6)
    model.zero_grad(set_to_none=True)
    model.draws.set_progress(5, iters_per_epoch=5)  # epoch 1
    model(views())["loss"].backward()
    assert last.original1.grad.abs().sum() > 0 and last.original0.grad.abs().sum() > 0  # its norm trains too


def test_attmask_refuses_batches_without_its_crops_and_bad_modes():
    model = tiny_attmask()
    with pytest.raises(ValueError, match="attmask trains on named views"):
        model({"inputs": torch.randn(2, 1, 16, 16)})
    with pytest.raises(ValueError, match=r"attmask needs the view\(s\) global_2"):
        model({"inputs": torch.randn(2, 1, 16, 16), "views": {"global_1": torch.randn(2, 1, 16, 16)}})
    with pytest.raises(ValueError, match="mode must be one of"):
        tiny_attmask(mode="middle")


def test_attmask_trains_and_resumes_bit_identical(tmp_path):
    import textwrap

    from maekit.authoring.testing import straight_and_resumed

    config = tmp_path / "attmask_tiny.py"
    config.write_text(textwrap.dedent("""
        model = dict(type="attmask", size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                     in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2), out_dim=32, head_hidden_dim=16,
                     head_bottleneck_dim=8, warmup_teacher_temp_epochs=2, mode="hint")
        data = dict(dataset=dict(type="digits", split="test", size=18, channels=1, fraction=0.1),
                    transform=dict(type="views", views=dict(
                        global_1=[dict(type="resized_crop", size=16, scale=(0.4, 1.0))],
                        global_2=[dict(type="resized_crop", size=16, scale=(0.4, 1.0)), dict(type="solarize", p=0.2)],
                        local_1=[dict(type="resized_crop", size=8, scale=(0.1, 0.4))])),
                    batch_size=8)
        schedule = dict(max_iters=6, warmup_iters=1, blr=1e-3, clip_grad=3.0, iters_per_epoch=2)
        checkpoint_interval = 3
        log_interval = 1
    """))
    straight, resumed = straight_and_resumed(config, tmp_path, iters=6, interrupt_at=3)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    assert int(straight["model.target.encoder.updates"]) == 6
    # the momentum's cosine spans the run (6 iterations): 0.996 → 1
    from maekit.engine import train
    from maekit.engine.hooks import method_of

    runner = train(config, tmp_path / "again", device="cpu", overrides={"schedule.max_iters": 2})
    assert method_of(runner).target.encoder.momentum.length == 2
    assert not torch.equal(straight["model.loss.center"], torch.zeros_like(straight["model.loss.center"]))


def _raw_pixel_mae():
    torch.manual_seed(0)
    return build("model", dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                               in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16,
                               decoder_depth=1, decoder_num_heads=2, norm_pix_loss=False))


def test_mra_keeps_the_attended_patches_and_reconstructs_the_rest():
    from maekit_attnmask.mra import MRAugmentor

    from maekit.nn.scores import cls_attention

    mae = _raw_pixel_mae()
    augmentor = MRAugmentor(mae, mask_ratio=0.5, probability=0.5)
    images = torch.randn(64, 1, 16, 16)
    noise = torch.rand(64, 17)
    out, chosen = augmentor(images, noise)
    assert torch.equal(chosen, noise[:, -1] < 0.5) and 0 < chosen.sum() < 64
    assert torch.equal(out[~chosen], images[~chosen])  # the coin said no: untouched
    tokens = mae.tokenize(images)
    scores = cls_attention(mae.encoder, tokens)
    kept = torch.argsort(scores, dim=1, descending=True)[:, :8]  # the top (1 − 0.5)·16
    out_tokens = mae.tokenize(out).values
    for row in torch.nonzero(chosen).flatten().tolist():
        keep = torch.zeros(16, dtype=torch.bool)
        keep[kept[row]] = True
        assert torch.equal(out_tokens[row, keep], tokens.values[row, keep])  # pasted back as they were
        assert not torch.allclose(out_tokens[row, ~keep], tokens.values[row, ~keep])
    # the reconstruction is the MAE's own prediction of the masked patches from the visible ones
    row = int(torch.nonzero(chosen)[0])
    mask = Mask.from_masked(~torch.isin(torch.arange(16), kept[row])[None])
    single = mae.tokenize(images[row: row + 1])
    pred = mae.decode(mae.encoder(single.take(mask.ids_keep)), mask, single)
    assert torch.allclose(out_tokens[row][mask.masked[0].bool()], pred[0][mask.masked[0].bool()], atol=1e-5)


def test_mra_refuses_a_norm_pix_mae_and_bad_augmentor_settings():
    from maekit_attnmask.mra import MRAugmentor, augmentor_model

    norm_pix = build("model", dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                                   in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_depth=1))
    with pytest.raises(ValueError, match="norm_pix_loss=False"):
        MRAugmentor(norm_pix)
    with pytest.raises(ValueError, match="must be a dict"):
        augmentor_model("dict(config='x')")
    with pytest.raises(ValueError, match="got the keys checkpoint, confg"):
        augmentor_model({"confg": "mra_mae_demo_digits", "checkpoint": "x.pth"})
    assert augmentor_model({"config": "mra_mae_demo_digits", "checkpoint": "x.pth"})["norm_pix_loss"] is False


def test_mra_classifier_trains_with_the_frozen_augmentor(tmp_path):
    from mmengine.config import Config

    from maekit.engine import train
    from maekit.engine.hooks import method_of

    mae_run = train(Config(dict(model=dict(type="mae", **ENCODER, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2,
                                    norm_pix_loss=False),
                         data=dict(dataset=dict(type="digits", split="test", size=16, channels=1, fraction=0.1),
                                   transform=dict(type="mae_augment", size=16, scale=(0.5, 1.0), flip=False), batch_size=8),
                         schedule=dict(max_iters=2, warmup_iters=1, blr=1e-3), log_interval=1)),
                    tmp_path / "mae", device="cpu")
    frozen = {k: v.clone() for k, v in method_of(mae_run).state_dict().items()}
    model = dict(type="mae", **ENCODER, norm_pix_loss=False, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    runner = train(Config(dict(model=dict(type="mra_classifier", model=model, num_classes=10,
                                   augmentor=dict(model=model, checkpoint=str(tmp_path / "mae" / "iter_2.pth"))),
                        data=dict(dataset=dict(type="digits", split="test", size=16, channels=1, fraction=0.2),
                                  transform=dict(type="mae_augment", size=16, scale=(0.6, 1.0), flip=False), batch_size=8),
                        schedule=dict(max_iters=3, warmup_iters=1, blr=1e-3), log_interval=1)),
                   tmp_path / "classifier", device="cpu")
    classifier = method_of(runner)
    state = classifier.augmentor.mae.state_dict()
    assert all(torch.equal(state[k], frozen[k]) for k in state)  # the augmentor did not train
    assert not classifier.augmentor.mae.training
    assert 0 <= runner.message_hub.get_scalar("train/augmented_share").current() <= 1
