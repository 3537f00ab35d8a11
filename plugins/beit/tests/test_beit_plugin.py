"""The plugin as users meet it: registered names, configs, pre-training through the engine with a
tokenizer trained first (and refusals of bad settings), the demo's short run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from maekit.engine import load_config

SMALL_PROBE = dict(train=dict(type="digits", split="test", size=32, channels=1),
                   test=dict(type="digits", split="test", size=32, channels=1))


def test_components_configs_and_demo_are_registered():
    from maekit.plugins import demos
    from maekit.registry import entries

    assert {"beit", "peco"} <= {entry.name for entry in entries("model")}
    assert {"dall_e", "vq", "peco_vq"} <= {entry.name for entry in entries("tokenizer")}
    assert demos()["beit"] == "maekit_beit.demo:run_beit_demo"
    cfg = load_config("beit_vit_base_in1k")
    assert cfg.model.num_masking == 75 and cfg.schedule.clip_grad == 3.0 and cfg.schedule.betas == (0.9, 0.999)
    peco = load_config("peco_vit_base_in1k")
    assert peco.model.tokenizer.patch_size == 16 and peco.model.tokenizer.type == "peco_vq"
    assert peco.model.tokenizer.perceptual.layers == (3, 6, 9, 12)


def test_settings_a_user_can_get_wrong_are_named():
    from maekit.registry import build

    with pytest.raises((ValueError, TypeError), match="beit size must be one of"):
        build("model", dict(type="beit", size="huge"))
    with pytest.raises((ValueError, TypeError), match="rel_pos must be"):
        build("model", dict(type="beit", size=None, img_size=16, patch_size=4, rel_pos="global",
                            encoder=dict(embed_dim=16, depth=1, num_heads=2), tokenizer=dict(type="vq", patch_size=4)))
    model = build("model", dict(type="beit", size=None, img_size=16, patch_size=4, num_masking=4, min_block=2,
                                encoder=dict(embed_dim=16, depth=1, num_heads=2),
                                tokenizer=dict(type="vq", patch_size=8, vocab_size=8, fit_steps=1)))
    import torch
    model.target.tokenizer.fit([torch.randn(4, 3, 16, 16)])
    with pytest.raises(ValueError, match="grids must match"):
        model(torch.randn(2, 3, 16, 16))  # a tokenizer grid (2×2) that is not the patch grid (4×4)


def test_demo_short_run_writes_every_figure_and_picture(tmp_path):
    from maekit_beit.demo import run_beit_demo

    metrics = run_beit_demo(tmp_path, max_iters=3, tokenizer_steps=5, probe=SMALL_PROBE, log=lambda *_: None)
    for name in ("beit", "mae", "peco"):
        for figure in ("probe_accuracy_pretrained", "probe_accuracy_random_init", "knn_accuracy_pretrained"):
            assert 0 <= metrics[f"{name}_{figure}"] <= 1
        assert Path(metrics["pictures"][name]).stat().st_size > 0
    assert metrics["peco_tokenizer"]["perceptual_loss"] > 0 and "perceptual_loss" not in metrics["vq_tokenizer"]
    assert json.loads((tmp_path / "metrics.json").read_text())["iterations"] == 3
    assert (tmp_path / "vq_tokenizer.safetensors").is_file() and (tmp_path / "peco_tokenizer.json").is_file()


def test_training_fits_the_tokenizer_first_and_checkpoints_carry_it(tmp_path):
    import torch

    from maekit.engine import train
    from maekit.io.checkpoint import load_state_dict

    cfg = load_config("beit_demo_digits", {"model.encoder": dict(embed_dim=32, depth=1, num_heads=2, init_values=0.1),
                                           "model.tokenizer.fit_steps": 3, "model.tokenizer.fit_samples": 64,
                                           "model.tokenizer.vocab_size": 16, "data.batch_size": 16,
                                           "schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2})
    train(cfg, tmp_path / "work", device="cpu", seed=0)
    state = load_state_dict(tmp_path / "work" / "iter_2.pth")
    assert bool(state["model.target.tokenizer.trained"])
    assert (tmp_path / "work" / "vq_tokenizer.safetensors").is_file()  # the fitted vocabulary, reusable as weights=
    saved = load_state_dict(tmp_path / "work" / "vq_tokenizer.safetensors")
    assert torch.equal(saved["quantizer._codebook.embed"], state["model.target.tokenizer.quantizer._codebook.embed"])
