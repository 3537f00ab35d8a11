"""maekit-distill: registration, BootMAE's and SdAE's mechanisms against independent computations
of the references, teachers through training (resume, DDP), configs and the demo.
Run alone with: MAEKIT_PLUGINS=maekit-distill python -m pytest plugins/distill/tests"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import maekit_distill
import pytest
import torch
from maekit_distill import plugin
from torch.nn import functional as F

from maekit.authoring.testing import Interrupted, interrupt_after
from maekit.io.checkpoint import load_state_dict
from maekit.registry import KINDS, build, registry_for
from maekit.structures import Mask

TINY = dict(size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8, in_chans=1,
            encoder=dict(embed_dim=32, depth=2, num_heads=4))


def tiny_bootmae(**overrides):
    return build("model", {"type": "bootmae", **TINY, "decoder_dim": 16, "decoder_num_heads": 4, "epochs": 8, **overrides})


def tiny_sdae(**overrides):
    return build("model", {"type": "sdae", **TINY, "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 4,
                           "epochs": 4, "drop_path_rate": 0.0, **overrides})


def test_distill_registers_only_its_own_names(fresh_registries):
    record = fresh_registries.load("maekit-distill", maekit_distill.__version__, lambda: plugin)
    assert record.status == "loaded", record.error
    registered = {(kind, entry.name) for kind in KINDS for entry in registry_for(kind).entries.values()}
    assert registered == {(kind, name) for kind, name, _ in plugin.COMPONENTS}
    for kind, name, _ in plugin.COMPONENTS:
        assert (registry_for(kind).get(name).__doc__ or "").strip(), f"{kind} {name} needs a docstring"


def test_centre_weighted_loss_is_bootmaes_image_domain_loss():
    from maekit_distill.bootmae import CentreWeightedMSELoss

    torch.manual_seed(0)
    batch, grid, patch = 2, 4, 8
    pred, target = torch.randn(batch, grid * grid, patch * patch), torch.randn(batch, grid * grid, patch * patch)
    masked = (torch.rand(batch, grid * grid) < 0.6).float()
    mask = Mask(torch.zeros(batch, 1, dtype=torch.long), torch.zeros(batch, grid * grid, dtype=torch.long), masked)
    # run_pretraining.py: weight_mask = m·pool(m) + m, upsampled to pixels; mean(w·err²) / mean(m)
    loss_mask = masked.reshape(-1, 1, grid, grid)
    weight_mask = loss_mask * F.avg_pool2d(loss_mask, 3, 1, padding=1) + loss_mask
    to_image = lambda x: x.reshape(batch, grid, grid, patch, patch).permute(0, 1, 3, 2, 4).reshape(batch, 1, 32, 32)  # noqa: E731
    weight_pixels = F.interpolate(weight_mask, (32, 32), mode="nearest")
    reference = torch.mean(weight_pixels * (to_image(pred) - to_image(target)) ** 2) / torch.mean(
        F.interpolate(loss_mask, (32, 32), mode="nearest"))
    ours = CentreWeightedMSELoss(grid)(pred, target, mask)
    assert torch.allclose(ours["loss"], reference, rtol=1e-5)
    # a removed token whose 8 neighbours are all removed weighs 2, an isolated one 1 + 1/9
    full = Mask(mask.ids_keep, mask.ids_restore, torch.ones(1, 16))
    assert CentreWeightedMSELoss(grid).token_weights(full).reshape(4, 4)[1, 1] == 2.0


def test_bootmae_pass_reads_its_taps_and_predicts_pixels_and_layernormed_features():
    torch.manual_seed(0)
    model = tiny_bootmae(img_size=224, patch_size=16)
    images = torch.randn(2, 1, 224, 224)
    out = model.run_steps({"inputs": images})
    assert torch.equal(out.mask.masked.sum(1), torch.tensor([147.0, 147.0]))  # exactly 147 of 196
    assert sorted(out.taps) == [1, 2] and out.taps[1].shape == (2, 50, 32)
    assert out.pred["pixels"].shape == (2, 196, 256) and out.pred["features"].shape == (2, 196, 32)
    features = out.pred["features"]
    assert torch.allclose(features.mean(-1), torch.zeros(2, 196), atol=1e-5)  # LayerNorm without affine
    # the feature target is the teacher's last block on the FULL image, before the final norm
    teacher = model.teacher.module
    last = teacher.forward_intermediates(out.tokens, [-1]).features[2][:, 1:]
    assert torch.allclose(out.target["features"], F.layer_norm(last, (32,), eps=1e-6), atol=1e-5)
    losses = model.compute_loss(out)
    assert set(losses) == {"loss", "pixel_loss", "feature_loss", "features_weight"}
    assert losses["features_weight"] == pytest.approx(4 * 1 / 8)  # min(4λ(e+1)/E, λ) at epoch 0 of 8
    assert torch.allclose(losses["loss"], losses["pixel_loss"] + 0.5 * losses["feature_loss"])
    # the teacher started as the student's copy and is not trained
    for (name, a), b in zip(model.encoder.state_dict().items(), teacher.state_dict().values()):
        assert torch.equal(a, b), name
    losses["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())


def test_bootmae_positions_are_moco_v3_tables_rows_first():
    model = tiny_bootmae()
    table = model.encoder.pos_embed[0, 1:]  # 4×4 grid, 32 wide: [sin r, cos r, sin c, cos c]
    omega = 1.0 / 10000 ** (torch.arange(8, dtype=torch.float32) / 8)
    row, col = 1, 3
    expected = torch.cat([torch.sin(row * omega), torch.cos(row * omega), torch.sin(col * omega), torch.cos(col * omega)])
    assert torch.allclose(table[row * 4 + col], expected)


def test_sdae_loss_takes_the_cosine_over_the_axis_the_reference_code_does():
    from maekit_distill.sdae import FoldedCosineLoss

    torch.manual_seed(0)
    model = tiny_sdae()
    out = model.run_steps({"inputs": torch.randn(3, 1, 32, 32)})
    ids = torch.argsort(out.mask.ids_restore, dim=1)[:, 4:]  # ids_unkeep: 12 removed tokens, 3 folds of 4
    # engine_pretrain.py: gather, reshape (B·3, 4, D), standardised teacher output, F.cosine_similarity default dim
    gathered = lambda x: x.gather(1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1])).reshape(9, 4, -1)  # noqa: E731
    reference = 1 - F.cosine_similarity(gathered(out.target), gathered(out.pred)).mean()
    assert torch.allclose(model.compute_loss(out)["loss"], reference, atol=1e-6)
    paper = FoldedCosineLoss(3, cos_dim="channels")(out.pred, out.target, out.mask)["loss"]
    assert torch.allclose(paper, 1 - F.cosine_similarity(gathered(out.target), gathered(out.pred), dim=2).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="cos_dim must be one of tokens, channels"):
        FoldedCosineLoss(cos_dim=1)
    # the teacher is its own random init, not the student's copy, and reads standardised outputs
    assert not torch.equal(model.target.teacher.module.blocks[0].attn.qkv.weight, model.encoder.blocks[0].attn.qkv.weight)
    removed = out.target.gather(1, ids.unsqueeze(-1).expand(-1, -1, 32))
    assert torch.allclose(removed.mean(-1), torch.zeros(3, 12), atol=1e-5)


def _tiny_training_config(folder: Path, method: str, iters: int = 6, batch: int = 8) -> Path:
    model = (f"dict(type='bootmae', **{TINY!r}, decoder_dim=16, decoder_num_heads=4, epochs=3, "
             f"momentum=dict(type='piecewise', points=[(0, 0.5), (3, 0.9)], by_epoch=True))" if method == "bootmae" else
             f"dict(type='sdae', **{TINY!r}, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=4, epochs=3)")
    path = folder / f"{method}_tiny.py"
    path.write_text(textwrap.dedent(f"""
        model = {model}
        data = dict(dataset=dict(type="digits", split="train", size=32, channels=1),
                    transform=dict(type="mae_augment", size=32, scale=(0.35, 1.0), flip=False), batch_size={batch})
        schedule = dict(max_iters={iters}, warmup_iters=1, blr=1e-3, iters_per_epoch=2)
        checkpoint_interval = 3
        log_interval = 1
    """))
    return path


@pytest.mark.parametrize("method", ["bootmae", "sdae"])
def test_resume_in_the_middle_is_bit_identical_with_the_teacher(tmp_path, method):
    from maekit.engine import train

    config = _tiny_training_config(tmp_path, method)
    train(config, tmp_path / "straight", device="cpu")
    with pytest.raises(Interrupted):
        train(config, tmp_path / "resumed", device="cpu", overrides={"custom_hooks": [interrupt_after(3)]})
    train(config, tmp_path / "resumed", device="cpu", resume="auto")
    straight, resumed = load_state_dict(tmp_path / "straight" / "iter_6.pth"), load_state_dict(tmp_path / "resumed" / "iter_6.pth")
    teacher_keys = [key for key in straight if ".teacher." in key]
    assert teacher_keys and straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    # the teacher moved: every step (BootMAE) or at the end of each 2-iteration epoch (SdAE)
    updates = next(value for key, value in straight.items() if key.endswith("teacher.updates"))
    assert int(updates) == (6 if method == "bootmae" else 3)
    first = load_state_dict(tmp_path / "straight" / "iter_3.pth")
    moved = [key for key in teacher_keys if key.endswith("qkv.weight") and not torch.equal(first[key], straight[key])]
    assert moved


def test_the_student_encoder_goes_through_cores_probe_and_finetuning(tmp_path):
    from maekit.engine import load_config, train
    from maekit.eval.finetune import run_finetune
    from maekit.eval.probe import load_trained_model, probe_pools

    config = _tiny_training_config(tmp_path, "bootmae", iters=2)
    config.write_text(config.read_text() + textwrap.dedent("""
        finetune = dict(num_classes=10, data=dict(dataset=dict(type="digits", split="test", size=32, channels=1),
                                                  transform=dict(type="mae_augment", size=32, scale=(0.6, 1.0), flip=False),
                                                  batch_size=16),
                        test=dict(type="digits", split="test", size=32, channels=1),
                        schedule=dict(max_iters=2, warmup_iters=1, blr=1e-3, layer_decay=0.65))
    """))
    train(config, tmp_path / "pre", device="cpu")
    cfg, checkpoint = load_config(config), tmp_path / "pre" / "iter_2.pth"
    model = load_trained_model(cfg.model, checkpoint)
    assert int(model.teacher.updates) == 2  # the whole method came back, teacher included
    digits = build("dataset", dict(type="digits", split="test", size=32, channels=1))
    scores = probe_pools(model, digits, digits, None, ("mean",))["mean"]
    assert 0 <= scores["linear_probe_accuracy"] <= 1
    metrics = run_finetune(cfg, str(checkpoint), tmp_path / "ft", device="cpu")
    assert 0 <= metrics["top1_accuracy"] <= 1


def test_two_process_ddp_keeps_teachers_equal_on_every_rank(tmp_path):
    config = _tiny_training_config(tmp_path, "bootmae", iters=3, batch=4)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import sys, torch
        from maekit.engine import train
        from maekit.engine.hooks import method_of
        runner = train(sys.argv[1], sys.argv[2], device="cpu", launcher="pytorch")
        teacher = method_of(runner).teacher
        torch.save(dict(teacher.state_dict()), f"{sys.argv[2]}/teacher_rank{runner.rank}.pt")
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
               str(script), str(config), str(tmp_path / "work")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "work" / f"teacher_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and int(ranks[0]["updates"]) == 3
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key


def test_configs_state_the_papers_recipes_and_the_demos_match_maes_budget():
    from maekit.engine import load_config
    from maekit.plugins import demos

    assert demos()["bootmae"].endswith(":run_bootmae_demo") and demos()["sdae"].endswith(":run_sdae_demo")
    plain = load_config("mae_demo_digits")
    for name in ("bootmae_demo_digits", "sdae_demo_digits"):
        demo = load_config(name)
        assert demo.data == plain.data, name
        assert {k: demo.schedule[k] for k in plain.schedule} == dict(plain.schedule), name
        assert demo.model.encoder == plain.model.encoder and demo.model.img_size == plain.model.img_size
        assert demo.model.epochs == demo.schedule.max_iters // demo.schedule.iters_per_epoch
    boot = load_config("bootmae_vit_base_in1k")
    epoch = boot.schedule.iters_per_epoch
    assert boot.schedule.max_iters == 800 * epoch and boot.schedule.warmup_iters == 40 * epoch
    assert boot.schedule.min_lr == 1e-4 and tuple(boot.schedule.betas) == (0.9, 0.999)
    sd = load_config("sdae_vit_base_in1k")
    assert sd.schedule.max_iters == 300 * sd.schedule.iters_per_epoch and sd.model.fold_size == 49
    model = build("model", {**boot.model, "size": None, "encoder_name": "vit_base_patch16_224",
                            "encoder": dict(depth=2)})  # the paper's widths, two blocks
    assert model.decoder.pixels.blocks[0].attn.head_dim == 42  # 512 // 12: the reference's 504-wide attention
    assert model.encoder_taps == (1, 2)


@pytest.mark.parametrize("method", ["bootmae", "sdae"])
def test_demo_configs_run_through_cores_demo(tmp_path, method):
    # the smoke test: two iterations, a small probe (the full demo, beside MAE, is `maekit demo
    # bootmae|sdae`; its side-by-side wiring is core's run_demo_beside_mae, tested with supmae)
    from maekit.configs import find_config
    from maekit.eval.demo import run_demo

    config = tmp_path / "demo.py"
    config.write_text(f"_base_ = [{str(find_config(method + '_demo_digits'))!r}]\n"
                      "probe = dict(train=dict(type='digits', split='test', size=32, channels=1),\n"
                      "             test=dict(type='digits', split='test', size=32, channels=1), pools=('mean',))\n")
    metrics = run_demo(tmp_path / "out", str(config), max_iters=2, log=lambda *_: None)
    assert 0 <= metrics["probe_accuracy_pretrained"] <= 1 and metrics["iterations"] == 2
    assert (tmp_path / "out" / "reconstructions.png").is_file()  # SdAE: input | masked (it predicts no pixels)
