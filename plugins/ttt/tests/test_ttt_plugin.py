"""maekit-ttt: TTT-MAE and TTT (rotation) on core's test-time loop, their checkpoints, the command
line on real folders (ImageNet-C's layout), the configs against the references, and the demo."""
from __future__ import annotations

import json
import textwrap

import maekit_ttt
import numpy as np
import pytest
import torch
from maekit_ttt import plugin
from torch.nn import functional as F

from maekit.authoring.testing import check_registers_only_its_names, run_cli
from maekit.eval.test_time import TestTimeSettings, adapt_and_predict, select_trainable
from maekit.registry import build

TINY_MAE = dict(type="ttt_mae", num_classes=10, head=dict(type="vit", width=16, depth=1, num_heads=2), size=None,
                encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1,
                encoder=dict(embed_dim=32, depth=2, num_heads=4), decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
TINY_ROTATION = dict(type="ttt_rotation", num_classes=10, in_chans=1, depth=8, width=1, groups=8, crop_padding=2, flip=True)


def tiny(spec: dict, **overrides):
    torch.manual_seed(0)
    return build("model", {**spec, **overrides})


def test_ttt_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-ttt", maekit_ttt.__version__, plugin,
                                   prefixes=("ttt_", "corrupted"), commands=("ttt-probe", "ttt-eval"))


def test_ttt_mae_trainable_presets_are_the_references_on_maekits_names():
    model = tiny(TINY_MAE)
    encoder = set(select_trainable(model, "encoder"))
    assert "decoder.mask_token" in encoder and "encoder.cls_token" in encoder and "encoder.patch_embed.proj.weight" in encoder
    assert not any(n.startswith(("decoder.blocks", "decoder.embed", "decoder.pred", "classifier.")) for n in encoder)
    assert "encoder.pos_embed" not in encoder  # the fixed sin-cos table
    strict = set(select_trainable(model, "encoder_no_cls_no_msk"))
    assert encoder - strict == {"decoder.mask_token", "encoder.cls_token"}
    assert any(n.startswith("decoder.blocks") for n in select_trainable(model, "all"))


def test_ttt_mae_copies_each_get_their_own_mask_and_the_loss_is_the_mae_loss():
    model = tiny(TINY_MAE)
    image = torch.rand(1, 16, 16)
    generator = torch.Generator().manual_seed(0)
    views = model.test_time_views(image, 6, generator)
    assert views["images"].shape == (6, 1, 16, 16) and torch.equal(views["images"][3], image)
    masks = model.make_mask(model.tokenize(views["images"]), noise=lambda shape, device: views["noise"])
    # each copy keeps the 4 of 16 patches its own noise ranks lowest (the reference's random_masking per row)
    assert torch.equal(masks.ids_keep, views["noise"].argsort(dim=1)[:, :4])
    assert len({tuple(row.tolist()) for row in views["noise"]}) == 6
    again = model.test_time_views(image, 6, generator)  # the next step draws new masks
    assert not torch.equal(again["noise"], views["noise"])
    # the norm-pix MSE over masked patches, computed here from the model's prediction
    out = model.run_steps(views["images"], noise=lambda shape, device: views["noise"])
    patches = F.unfold(views["images"], 4, stride=4).transpose(1, 2)  # 6 × 16 × 16 (one channel: no order to choose)
    target = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True, unbiased=True) + 1e-6).sqrt()
    error = ((out.pred - target) ** 2).mean(-1)
    expected = (error * out.mask.masked).sum() / out.mask.masked.sum()
    assert torch.allclose(model.test_time_loss(views), expected, atol=1e-5)


def test_probe_stage_trains_the_classifier_on_every_token_of_the_frozen_encoder():
    model = tiny(TINY_MAE, stage="probe").train()
    assert not model.encoder.training and model.classifier.training
    batch = {"inputs": torch.rand(4, 1, 16, 16), "label": torch.tensor([0, 1, 2, 3])}
    losses = model(batch)
    losses["loss"].backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.classifier.parameters())
    expected = F.cross_entropy(model.classifier(model.encoder(model.tokenize(batch["inputs"]))), batch["label"],
                               label_smoothing=0.1)  # the reference main_prob.py's default
    assert torch.allclose(losses["loss"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="no label"):
        model({"inputs": batch["inputs"], "label": torch.tensor([0, -1, 2, 3])})


def test_checkpoints_official_names_load_and_an_encoder_export_is_refused(tmp_path):
    from maekit_ttt.ttt_mae import load_mae_with_decoder

    from maekit.io.checkpoint import save_state_dict
    from maekit.io.convert import convert_state_dict

    source = tiny(TINY_MAE)
    torch.manual_seed(1)
    for p in source.parameters():
        p.data.normal_()
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("classifier.") and k != "probe_iterations"}
    official = convert_state_dict(state, source="maekit", target="official")
    renames = {"embed.": "classifier_embed.", "blocks.": "classifier_blocks.", "norm.": "classifier_norm.", "head.": "classifier_pred."}
    probe = {next(new + k[len(old):] for old, new in renames.items() if k.startswith(old)): v
             for k, v in source.classifier.state_dict().items()}
    probe["classifier_pos_embed"] = torch.zeros(1, 17, 16)
    save_state_dict(official, tmp_path / "mae_full.pth")
    save_state_dict(probe, tmp_path / "probe.pth")
    target = tiny(TINY_MAE)
    load_mae_with_decoder(target, [str(tmp_path / "mae_full.pth"), str(tmp_path / "probe.pth")])
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    load_mae_with_decoder(tiny(TINY_MAE), [str(tmp_path / "mae_full.pth"), str(tmp_path / "probe.pth")], require_classifier=True)
    # a maekit pre-training file counts 0 probe steps (its classifier is untrained) ...
    save_state_dict(tiny(TINY_MAE).state_dict(), tmp_path / "maekit_pretrain.pth")
    with pytest.raises(ValueError, match="no trained classifier"):
        load_mae_with_decoder(tiny(TINY_MAE), str(tmp_path / "maekit_pretrain.pth"), require_classifier=True)
    # ... and the reference's probe file after it replaces that count
    load_mae_with_decoder(tiny(TINY_MAE), [str(tmp_path / "maekit_pretrain.pth"), str(tmp_path / "probe.pth")],
                          require_classifier=True)
    save_state_dict({k: v for k, v in state.items() if k.startswith("encoder.")}, tmp_path / "encoder.pth")
    with pytest.raises(ValueError, match="encoder.pth: no decoder weights"):
        load_mae_with_decoder(tiny(TINY_MAE), str(tmp_path / "encoder.pth"))


def test_rotation_model_joint_loss_views_and_trainable_set():
    model = tiny(TINY_ROTATION)
    images, labels = torch.rand(3, 1, 16, 16), torch.tensor([1, 2, 3])
    losses = model({"inputs": images, "label": labels})
    rotated = torch.cat([torch.rot90(images, k, (2, 3)) for k in range(4)])
    expected_rotation = F.cross_entropy(model.rotation_head(model.trunk(rotated)), torch.arange(4).repeat_interleave(3))
    expected_main = F.cross_entropy(model.main_head(model.trunk(images)), labels)
    assert torch.allclose(losses["loss"], expected_main + expected_rotation, atol=1e-6)
    # each copy: a crop of the zero-padded image (maybe flipped), then its quarter turn
    image = torch.rand(1, 16, 16)
    views = model.test_time_views(image, 8, torch.Generator().manual_seed(0))
    padded = F.pad(image, (2, 2, 2, 2), value=-1.0)  # black after the reference's 0.5/0.5 normalisation
    crops = [padded[:, t:t + 16, s:s + 16] for t in range(5) for s in range(5)]
    crops += [c.flip(-1) for c in crops]
    for view, turn in zip(views["images"], views["turns"]):
        upright = torch.rot90(view, -int(turn), (1, 2))
        assert any(torch.equal(upright, c) for c in crops)
    assert set(views["turns"].tolist()) <= {0, 1, 2, 3}
    # the reference adapts the shared trunk and the rotation head; the main head stays as trained
    _, weights = adapt_and_predict(model, torch.rand(2, 1, 16, 16), TestTimeSettings(
        steps=2, copies=4, lr=1e-2, momentum=0.0, trainable="shared_and_rotation", samples_per_batch=2), keep_weights=True)
    assert {k.split(".")[0] for k in weights[0]} == {"trunk", "rotation_head"}
    with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
        tiny(TINY_ROTATION, depth=9)
    with pytest.raises(ValueError, match="multiple of 4"):
        model.classify({"inputs": torch.rand(1, 1, 18, 18)})
    # the rotation head starts as a copy of the initialised main head's stage 3, as the reference's
    main_stage, rotation_stage = model.main_head[0].state_dict(), tiny(TINY_ROTATION).rotation_head[0].state_dict()
    assert all(torch.equal(main_stage[k], rotation_stage[k]) for k in main_stage)


def test_configs_state_the_references_settings():
    from maekit.engine import load_config

    large = load_config("ttt_mae_vit_large_in1k")
    assert (large.ttt.steps, large.ttt.copies, large.ttt.lr, large.ttt.momentum, large.ttt.weight_decay) == (20, 128, 5e-3, 0.9, 0.0)
    assert large.ttt.trainable == "encoder" and large.model.head == dict(type="vit", width=768, depth=12, num_heads=12)
    assert large.ttt_probe.schedule.weight_decay == 0.2 and large.ttt_probe.schedule.blr == 1e-3
    assert large.eval_transform == dict(type="resize_center_crop", size=224, resize=256)
    digits = load_config("ttt_mae_digits")
    assert digits.ttt.lr == pytest.approx(1e-2 * digits.ttt.copies / 256)  # the reference's scaling rule
    rotation = load_config("ttt_rotation_digits")
    assert (rotation.ttt.lr, rotation.ttt.momentum, rotation.ttt.copies, rotation.ttt.steps) == (1e-3, 0.0, 32, 10)


def _write_imagenet_c(root, corruption: str, severity: int, count: int = 1, classes: int = 10) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in map(str, range(classes)):
        folder = root / corruption / str(severity) / label
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(folder / f"img{i}.JPEG", quality=85)


def test_command_line_trains_probes_and_evaluates_on_digits_and_on_a_corrupted_folder(tmp_path):
    config = tmp_path / "tiny_ttt.py"
    config.write_text(textwrap.dedent(f"""
        _base_ = ["{(plugin.__file__.rsplit('/', 1)[0])}/configs/ttt_mae_digits.py"]
        model = dict(head=dict(type="vit", width=16, depth=1, num_heads=2), img_size=16, patch_size=4,
                     encoder=dict(embed_dim=32, depth=2, num_heads=4), decoder_embed_dim=16, decoder_depth=1,
                     decoder_num_heads=2)
        _digits = dict(type="digits", split="train", size=16, channels=1)
        data = dict(dataset=_digits, transform=dict(type="mae_augment", size=16, scale=(0.35, 1.0), flip=False), batch_size=16)
        schedule = dict(max_iters=2, warmup_iters=0)
        checkpoint_interval = 2
        ttt_probe = dict(data=data, schedule=dict(max_iters=2, warmup_iters=0, blr=1e-3, weight_decay=0.2))
        ttt = dict(steps=1, copies=4, samples_per_batch=2)
        ttt_eval = dict(test=dict(type="digits", split="test", size=16, channels=1), corruptions=["contrast"],
                        severities=[3], limit=3)
    """))
    run_cli("train", str(config), "--work-dir", str(tmp_path / "mae"), "--device", "cpu")
    run_cli("ttt-probe", str(config), "--checkpoint", str(tmp_path / "mae" / "iter_2.pth"), "--work-dir", str(tmp_path / "probe"))
    probe = str(tmp_path / "probe" / "iter_2.pth")
    run_cli("ttt-eval", str(config), "--checkpoint", probe, "--out", str(tmp_path / "digits.json"))
    metrics = json.loads((tmp_path / "digits.json").read_text())
    assert set(metrics["conditions"]) == {"clean", "contrast/3"}
    assert len(metrics["conditions"]["contrast/3"]["accuracy_per_step"]) == 2 and metrics["conditions"]["clean"]["images"] == 3
    # a user's already corrupted folder (ImageNet-C layout, JPEG files of another size: resized to the model's)
    _write_imagenet_c(tmp_path / "imagenet-c", "frost", 2)
    run_cli("ttt-eval", str(config), "--checkpoint", probe, "--corrupted-root", str(tmp_path / "imagenet-c"),
            "--reset", "online", "--out", str(tmp_path / "folder.json"))
    found = json.loads((tmp_path / "folder.json").read_text())
    assert set(found["conditions"]) == {"frost/2"} and found["conditions"]["frost/2"]["images"] == 3  # ttt_eval.limit
    assert found["complete"] is True and found["checkpoint"] == probe
    assert found["settings"]["reset"] == "online"
    # mistakes: one Error line naming the value (in this process: the same click command)
    from click.testing import CliRunner

    from maekit.cli import main

    _write_imagenet_c(tmp_path / "exports", "fog", 1, count=2, classes=2)
    flat = tmp_path / "flat" / "fog" / "1"
    flat.mkdir(parents=True)
    (tmp_path / "exports" / "fog" / "1" / "0" / "img0.JPEG").rename(flat / "img0.JPEG")
    from maekit.io.checkpoint import load_state_dict, save_state_dict
    save_state_dict({k: v for k, v in load_state_dict(probe).items() if ".decoder." not in k and not k.startswith("decoder.")},
                    tmp_path / "encoder_only.pth")
    for command, args, message in (
            ("ttt-eval", ["--corruption", "fgo"], "config ttt_eval.corruptions: 'fgo' is unknown (did you mean 'fog'?)"),
            ("ttt-eval", ["--corruption", "frost"], "'frost' can only be read from a corrupted_root folder"),
            ("ttt-eval", ["--cfg-options", "ttt.stesp=3"], "stesp"),
            ("ttt-eval", ["--corrupted-root", str(tmp_path / "probe")], "no ImageNet-C corruption folders"),
            ("ttt-eval", ["--corrupted-root", str(tmp_path / "exports"), "--severity", "4"], "none of the asked folders"),
            ("ttt-eval", ["--corrupted-root", str(tmp_path / "flat")], "no class folders"),
            ("ttt-eval", ["--corrupted-root", str(tmp_path / "exports")], "2 class folders, the model predicts 10 classes"),
            ("ttt-eval", ["--cfg-options", "ttt.copies=2.5"], "copies=2.5: expected an integer"),
            ("ttt-eval", ["--checkpoint", str(tmp_path / "mae" / "iter_2.pth")], "no trained classifier (a pre-training checkpoint?)"),
            ("ttt-probe", [], "encoder_only.pth: no decoder weights")):
        checkpoint = str(tmp_path / "encoder_only.pth") if command == "ttt-probe" else probe
        result = CliRunner().invoke(main, [command, str(config), "--checkpoint", checkpoint, *args], env={"MAEKIT_DEBUG": ""})
        errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert result.exit_code == 1 and len(errors) == 1 and message in errors[0], result.output[-1500:]
        assert "Traceback" not in result.output


def test_limit_spreads_over_the_set_and_the_loop_streams_in_chunks():
    from maekit_ttt.evaluate import chosen_indices, evaluate_condition

    assert chosen_indices(10, None) == list(range(10)) and chosen_indices(1000, 4) == [0, 333, 666, 999]
    model = tiny(TINY_MAE)
    dataset = [{"inputs": torch.rand(1, 16, 16), "label": i % 10} for i in range(5)]
    for reset in ("episodic", "online"):  # online: the stream goes on across chunks
        settings = TestTimeSettings(steps=2, copies=3, lr=1e-2, samples_per_batch=2, reset=reset)
        whole = evaluate_condition(model, dataset, list(range(5)), settings, lambda x: x, torch.device("cpu"))
        pieces = evaluate_condition(model, dataset, list(range(5)), settings, lambda x: x, torch.device("cpu"), chunk=1)
        assert whole["accuracy_per_step"] == pieces["accuracy_per_step"], reset
        assert whole["loss_per_step"] == pytest.approx(pieces["loss_per_step"], abs=1e-6), reset
    online = evaluate_condition(model, dataset, list(range(5)), settings, lambda x: x, torch.device("cpu"))
    episodic = evaluate_condition(model, dataset, list(range(5)), TestTimeSettings(
        steps=2, copies=3, lr=1e-2, samples_per_batch=2), lambda x: x, torch.device("cpu"))
    assert online["loss_per_step"] != pytest.approx(episodic["loss_per_step"], abs=1e-6)


def test_demo_smoke(tmp_path):
    from maekit_ttt.demo import run_ttt_demo

    metrics = run_ttt_demo(tmp_path, max_iters=2, limit=2, steps=1, conditions={"corruptions": ["contrast"], "severities": [3]},
                           log=lambda line: None)
    for method in ("ttt_mae", "ttt"):
        assert set(metrics[method]["conditions"]) == {"clean", "contrast/3"}
        assert len(metrics[method]["conditions"]["contrast/3"]["accuracy_per_step"]) == 2
    assert json.loads((tmp_path / "metrics.json").read_text())["limit"] == 2
