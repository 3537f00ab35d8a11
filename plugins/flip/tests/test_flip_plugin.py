"""maekit-flip as a plugin: what it registers, that it stands alone with core, its configs,
training (masked, then the unmasked phase from a checkpoint), and its commands."""
from __future__ import annotations

import json
import subprocess

import torch

import maekit_flip
from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit_flip import plugin


def maekit(*args: str, only: str | None = "maekit-flip", check: bool = True) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": only} if only else None, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-flip", maekit_flip.__version__, plugin, ("flip",),
                                   commands=("zeroshot", "retrieval"))


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-flip", maekit_flip.__version__, plugin,
                       configs=("flip_vit_base_16", "flip_vit_base_16_unmasked", "flip_demo_digits",
                                "flip_demo_digits_unmasked"),
                       demo="flip\tmaekit_flip.demo:run_flip_demo", commands=("zeroshot", "retrieval"))


def test_paper_config_is_vit_b16_with_the_papers_recipe():
    from maekit.engine import load_config
    from maekit.registry import build

    cfg = load_config("flip_vit_base_16")
    assert cfg.data.batch_size * cfg._processes == 65536
    assert cfg.schedule.blr == 4e-6 and cfg.schedule.weight_decay == 0.2 and cfg.schedule.betas[1] == 0.95
    assert tuple(cfg.data.transform.scale) == (0.5, 1.0) and cfg.data.transform.flip
    model = build("model", {**cfg.model, "text": {**cfg.model.text, "depth": 1}})  # full image tower, short text
    assert model.masker.mask_ratio == 0.5 and model.encoder.patch_size == (16, 16) and model.encoder.embed_dim == 768
    assert len(model.encoder.blocks) == 12 and model.decoder.proj.out_features == 512
    unmasked = load_config("flip_vit_base_16_unmasked")
    assert unmasked.model.mask_ratio == 0.0 and unmasked.schedule.blr == 4e-8 and "load_from" in unmasked


def tiny_overrides(iters: int) -> dict:
    return {"model.encoder": dict(embed_dim=32, depth=1, num_heads=2), "model.text": dict(width=32, depth=1, num_heads=2),
            "model.img_size": 16, "model.embed_dim": 16, "data.dataset.size": 16, "data.transform.size": 16,
            "data.batch_size": 8, "schedule.max_iters": iters, "schedule.warmup_iters": 0,
            "checkpoint_interval": iters, "log_interval": 1}


def test_trains_then_the_unmasked_phase_continues_from_the_checkpoint(tmp_path):
    from maekit.engine import train
    from maekit.io.checkpoint import load_state_dict
    from maekit.io.convert import strip_runner_prefix

    runner = train("flip_demo_digits", tmp_path / "masked", overrides=tiny_overrides(3), device="cpu")
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current()))
    checkpoint = tmp_path / "masked" / "iter_3.pth"
    overrides = {**tiny_overrides(1), "load_from": str(checkpoint), "schedule.blr": 0.0}
    runner = train("flip_demo_digits_unmasked", tmp_path / "unmasked", overrides=overrides, device="cpu")
    assert runner.model.model.masker.mask_ratio == 0.0
    before, after = strip_runner_prefix(load_state_dict(checkpoint)), runner.model.model.state_dict()
    assert torch.equal(before["target.positional_embedding"], after["target.positional_embedding"])  # lr 0: the loaded weights


def test_zeroshot_and_retrieval_commands_on_a_trained_checkpoint(tmp_path):
    from maekit.engine import train

    train("flip_demo_digits", tmp_path, overrides=tiny_overrides(2), device="cpu")
    options = [f"{k}={v!r}" if not isinstance(v, (int, float)) else f"{k}={v}" for k, v in tiny_overrides(2).items()
               if k.startswith("model.")]
    options += ["zeroshot.dataset.size=16", "retrieval.dataset.size=16"]
    out = tmp_path / "zeroshot.json"
    result = maekit("zeroshot", "flip_demo_digits", "--checkpoint", str(tmp_path / "iter_2.pth"), "--out", str(out),
                    "--cfg-options", *options)
    scores = json.loads(out.read_text())
    assert 0 <= scores["top1"] <= scores["top5"] <= 1 and scores["num_images"] == 360 and scores["num_classes"] == 10
    assert '"top1"' in result.stdout
    result = maekit("retrieval", "flip_demo_digits", "--checkpoint", str(tmp_path / "iter_2.pth"), "--cfg-options", *options)
    recall = json.loads(result.stdout)
    assert recall["num_images"] == recall["num_captions"] == 360 and recall["text_to_image_R@1"] <= recall["text_to_image_R@10"]
    missing = maekit("zeroshot", "mae_demo_digits", check=False)
    assert missing.returncode != 0 and "has no 'zeroshot' section" in missing.stderr


def test_open_clip_checkpoint_evaluates_through_the_command(tmp_path):
    from open_clip.model import CLIP

    torch.manual_seed(0)
    reference = CLIP(embed_dim=16, vision_cfg=dict(image_size=16, patch_size=4, width=32, layers=1, head_width=16),
                     text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
    torch.save(reference.state_dict(), tmp_path / "open_clip.pt")
    options = ["model.encoder_name='vit_base_patch16_clip_224'", "model.img_size=16", "model.patch_size=4",
               "model.encoder={'embed_dim': 32, 'depth': 1, 'num_heads': 2}", "model.pool='cls'",
               "model.fixed_pos_embed=False", "model.embed_dim=16", "model.text={'width': 32, 'depth': 1, 'num_heads': 2}",
               "zeroshot.dataset.size=16"]
    scores = json.loads(maekit("zeroshot", "flip_demo_digits", "--checkpoint", str(tmp_path / "open_clip.pt"),
                               "--open-clip", "--cfg-options", *options).stdout)
    assert 0 <= scores["top1"] <= 1
    wrong = maekit("zeroshot", "flip_demo_digits", "--checkpoint", str(tmp_path / "open_clip.pt"), "--open-clip",
                   "--cfg-options", *options[:-2], "zeroshot.dataset.size=16", check=False)
    assert wrong.returncode != 0 and "does not fit the configured FLIP" in wrong.stderr


def test_demo_writes_metrics_and_picture(tmp_path, monkeypatch):
    from maekit.engine import load_config
    from maekit_flip.demo import run_flip_demo

    cfg = load_config("flip_demo_digits")
    cfg.merge_from_dict({**tiny_overrides(2), "zeroshot.dataset.size": 16, "retrieval.dataset.size": 16})
    cfg.dump(str(tmp_path / "tiny_flip.py"))
    metrics = run_flip_demo(tmp_path / "out", config=str(tmp_path / "tiny_flip.py"), log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written == metrics and written["iterations"] == 2
    for key in ("zeroshot_top1_pretrained", "zeroshot_top1_random_init", "text_to_image_R@1_pretrained",
                "image_to_text_R@5_random_init"):
        assert 0 <= written[key] <= 1
    from PIL import Image

    assert Image.open(written["picture"]).size[0] > 2 * 16  # input | masked, side by side
