"""maekit-skeleton as a plugin: what it registers, that it stands alone with core, its configs,
training, the preprocess and evaluation commands, the stick figures and the demo."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import torch

import maekit_skeleton
from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build
from maekit_skeleton import plugin

TWO_STEPS = {"schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2, "log_interval": 1,
             "model.depth": 1, "model.decoder_depth": 1, "data.batch_size": 4}


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-skeleton"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-skeleton", maekit_skeleton.__version__, plugin,
                                   ("skeleton", "ntu"), commands=("skeleton-preprocess", "skeleton-eval"))


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-skeleton", maekit_skeleton.__version__, plugin,
                       configs=("skeleton_mae_ntu60_xsub", "skeleton_mae_ntu120_xsub", "mamp_ntu60_xsub",
                                "skeleton_mae_demo"),
                       demo="skeleton\tmaekit_skeleton.demo:run_skeleton_demo",
                       commands=("skeleton-preprocess", "skeleton-eval"))


def test_paper_configs_have_mamps_sizes_and_recipe():
    from maekit.engine import load_config

    cfg = load_config("skeleton_mae_ntu60_xsub")
    model = build("model", {**cfg.model, "depth": 1, "decoder_depth": 1})  # the paper's widths; one block each
    tokens = model.tokenize(torch.zeros(1, 3, 120, 25, 2))
    assert tokens.num_tokens == 750 and tokens.batch_size == 2  # 30 segments × 25 joints per body
    assert model.encoder.embed_dim == 256 and model.encoder.blocks[0].attn.num_heads == 8 and cfg.model.depth == 8
    assert model.decoder.embed.out_features == 256 and cfg.model.decoder_depth == 3
    assert model.make_mask(tokens).num_visible == 10 * 7  # kept: 10 of 25 joints at 7 of 30 segments
    assert cfg.data.transform.crop == (0.5, 1.0) and cfg.data.transform.rotation == 0.3
    assert cfg.schedule.blr * cfg.data.batch_size / 256 == 1e-3 and cfg.schedule.weight_decay == 0.05
    assert cfg.schedule.max_iters == 20 * cfg.schedule.warmup_iters  # 400 epochs, 20 of warm-up
    assert (cfg.linear_eval.lr, cfg.linear_eval.epochs, cfg.linear_eval.batch_size) == (0.1, 100, 128)
    assert cfg.finetune.classifier == "skeleton_classifier" and cfg.finetune.schedule.layer_decay == 0.8
    assert load_config("skeleton_mae_ntu120_xsub").model.decoder_depth == 5
    mamp = load_config("mamp_ntu60_xsub").model
    assert mamp.target == "motion" and mamp.masker == dict(type="skeleton_motion_aware_masker", mask_ratio=0.9, tau=0.8)


def test_every_demo_config_trains(tmp_path):
    from maekit.engine import train

    for config, extra in (("skeleton_mae_demo", {}),
                          ("skeleton_mae_demo", {"model.target": "motion",
                                                 "model.masker": dict(_delete_=True, type="skeleton_motion_aware_masker")})):
        work = tmp_path / config / str(len(extra))
        runner = train(config, work, overrides={**TWO_STEPS, **extra}, device="cpu")
        assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current())), extra
        assert (work / "iter_2.pth").is_file()


def test_preprocess_and_linear_evaluation_commands(tmp_path):
    from maekit_skeleton.demo_data import write_demo_skeletons

    write_demo_skeletons(tmp_path / "raw", performers=4, replications=1)
    maekit("skeleton-preprocess", str(tmp_path / "raw"), "--out", str(tmp_path / "demo.npz"), "--subset", "ntu60",
           "--max-frames", "100")
    archive = np.load(tmp_path / "demo.npz")
    assert archive["x_train"].shape[0] == 3 * 9 and archive["x_test"].shape[0] == 9  # performer 3 tests
    printed = maekit("skeleton-eval", "skeleton_mae_demo", "--protocol", "linear",
                     "--cfg-options", "linear_eval.train.type=ntu_npz", f"linear_eval.train.path={tmp_path / 'demo.npz'}",
                     "linear_eval.epochs=2", "--cfg-options", "linear_eval.test.type=ntu_npz",
                     f"linear_eval.test.path={tmp_path / 'demo.npz'}", "linear_eval.test.split=test",
                     "--out", str(tmp_path / "linear.json"))
    metrics = json.loads((tmp_path / "linear.json").read_text())
    assert metrics["test_samples"] == 9 and 0 <= metrics["linear_accuracy"] <= 1 and "linear_accuracy" in printed.stdout
    failed = maekit("skeleton-preprocess", str(tmp_path / "raw"), "--out", str(tmp_path / "x.npz"), "--max-frames", "5",
                    check=False)
    assert failed.returncode != 0 and "more than max_frames=5" in failed.stderr
    failed = maekit("skeleton-eval", "skeleton_mae_demo", "--cfg-options", "linear_eval=None", check=False)
    assert failed.returncode != 0 and "no 'linear_eval' section" in failed.stderr


def test_stick_figures_show_input_masked_and_reconstruction():
    from maekit_skeleton.visualize import skeleton_panels

    model = build("model", dict(type="skeleton_mae", num_frames=16, embed_dim=32, depth=1, num_heads=2,
                                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2))
    x = torch.zeros(2, 3, 16, 25, 2)
    x[:, 0, :, :, 0] = torch.linspace(-0.5, 0.5, 25)
    x[:, 1, :, :, 0] = torch.linspace(-1, 1, 25)
    rows = skeleton_panels(model, x, num_shown=3, cell=32)
    assert len(rows) == 2 and [panel.shape for panel in rows[0]] == [(32, 96, 3)] * 3
    plain, masked, reconstructed = rows[0]
    assert (plain < 100).any() and not np.array_equal(plain, masked)  # removed joints greyed out
    assert ((reconstructed[..., 0] > 150) & (reconstructed[..., 1] < 100)).any()  # predicted joints in red


def test_demo_writes_metrics_and_picture(tmp_path):
    from maekit_skeleton.demo import run_skeleton_demo

    metrics = run_skeleton_demo(tmp_path / "out", max_iters=2, log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written == metrics and written["iterations"] == 2
    for key in ("probe_accuracy_pretrained", "probe_accuracy_random_init", "linear_eval_accuracy_pretrained",
                "linear_eval_accuracy_random_init", "knn_accuracy_pretrained"):
        assert 0 <= written[key] <= 1, key
    from PIL import Image

    assert Image.open(written["reconstructions"]).size[0] > 3 * 4 * 48  # three strips of four frames
