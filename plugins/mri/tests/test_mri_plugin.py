"""maekit-mri as a plugin: what it registers, that it stands alone with core, its configs,
training of every config, the synthesize command and the demo."""
from __future__ import annotations

import json
import subprocess

import torch

import maekit_mri
from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build
from maekit_mri import plugin

TWO_STEPS = {"schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2, "log_interval": 1}


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-mri"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-mri", maekit_mri.__version__, plugin, ("mri", "edge_mae"),
                                   commands=("mri-preprocess", "synthesize"))


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-mri", maekit_mri.__version__, plugin,
                       configs=("edge_mae_brats", "mtnet_brats_t1_t2", "edge_mae_demo", "mtnet_demo", "mim3d_demo"),
                       demo="mri\tmaekit_mri.demo:run_mri_demo", commands=("mri-preprocess", "synthesize"))


def test_paper_configs_have_the_papers_sizes_and_recipe():
    from maekit.engine import load_config

    cfg = load_config("edge_mae_brats")
    model = build("model", {**cfg.model, "depth": 1, "decoder_depth": 1})  # the paper's widths; one block each
    assert model.encoder.embed_dim == 128 and cfg.model.depth == 12 and model.encoder.blocks[0].attn.num_heads == 16
    assert model.tokenize(torch.zeros(1, 1, 256, 256)).num_tokens == 1024 and model.masker.mask_ratio == 0.7
    assert model.decoder.embed.out_features == 64 and cfg.model.decoder_depth == 8
    assert (model.loss.rec_weight, model.loss.edge_weight, model.loss.patch_wise) == (10.0, 1.0, True)
    assert cfg.data.batch_size == 20 and cfg.schedule.blr * 20 / 256 == 3e-3 and tuple(cfg.schedule.betas) == (0.9, 0.95)
    assert cfg.schedule.max_iters == 20 * cfg.schedule.warmup_iters  # 100 epochs, 5 of warm-up
    synthesis = load_config("mtnet_brats_t1_t2")
    assert synthesis.model.encoder == cfg.model and tuple(synthesis.model.skip_layers) == (0, 3, 6, 9, 12)
    assert synthesis.model.pixel_weight == 10000.0 and synthesis.model.consistency_layers == 12
    assert (synthesis.data.dataset.source, synthesis.data.dataset.target) == ("t1", "t2")
    assert synthesis.synthesis.dataset.split == "test"


def test_every_demo_config_trains(tmp_path):
    from maekit.engine import train

    for config in ("edge_mae_demo", "mtnet_demo", "mim3d_demo"):
        runner = train(config, tmp_path / config, overrides=TWO_STEPS, device="cpu")
        assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current())), config
        assert (tmp_path / config / "iter_2.pth").is_file()


def test_synthesize_command_writes_volumes_and_per_subject_metrics(tmp_path):
    from maekit.engine import load_config

    cfg = load_config("mtnet_demo")
    cfg.merge_from_dict(TWO_STEPS)
    cfg.dump(str(tmp_path / "tiny_mtnet.py"))
    maekit("train", str(tmp_path / "tiny_mtnet.py"), "--work-dir", str(tmp_path / "work"))
    maekit("synthesize", str(tmp_path / "tiny_mtnet.py"), "--checkpoint", str(tmp_path / "work" / "iter_2.pth"),
           "--out", str(tmp_path / "synth"))
    metrics = json.loads((tmp_path / "synth" / "metrics.json").read_text())
    assert metrics["subjects"] == 1 and metrics["slices"] > 10
    assert metrics["psnr_mean"] > 0 and 0 <= metrics["per_subject"]["anatomical"]["ssim"] <= 1
    assert (tmp_path / "synth" / "anatomical_synthesised.nii.gz").is_file()
    failed = maekit("synthesize", "edge_mae_demo", "--out", str(tmp_path / "x"), check=False)
    assert failed.returncode != 0 and "no 'synthesis' section" in failed.stderr


def test_demo_writes_metrics_and_picture(tmp_path):
    from maekit_mri.demo import run_mri_demo

    metrics = run_mri_demo(tmp_path / "out", max_iters=2, log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written == metrics and written["iterations"] == 2
    for key in ("synthesis_psnr_mean_pretrained", "synthesis_psnr_mean_from_scratch", "synthesis_ssim_mean_pretrained"):
        assert key in written and written[key] == written[key], key  # present and not NaN
    from PIL import Image

    assert Image.open(written["picture"]).size[0] > 5 * 32  # five panels per row
