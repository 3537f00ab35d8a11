"""maekit-pathology as a plugin: what it registers, that it stands alone with core, its configs,
training, the few-label evaluation command and the demo."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch

import maekit_pathology
from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build
from maekit_pathology import plugin

TINY = {"schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2, "log_interval": 1,
        "model.embed_dim": 32, "model.depth": 1, "model.num_heads": 2, "model.decoder_dim": 16,
        "model.decoder_num_heads": 2, "data.batch_size": 8}


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-pathology"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-pathology", maekit_pathology.__version__, plugin,
                                   ("mmae", "pathology"), commands=("pathology-stains", "pathology-eval"))


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-pathology", maekit_pathology.__version__, plugin,
                       configs=("mmae_small_nct", "mmae_demo_tiles", "sdmae_demo_tiles"),
                       demo="pathology\tmaekit_pathology.demo:run_pathology_demo",
                       commands=("pathology-stains", "pathology-eval"))


def test_paper_config_is_multimae_small_with_the_mmae_recipe():
    from maekit.engine import load_config

    cfg = load_config("mmae_small_nct")
    model = build("model", {**cfg.model, "depth": 1})  # the paper's widths; one block is enough to check
    assert (model.encoder.embed_dim, len(model.encoder.blocks[0].attn.qkv.weight) // 3) == (384, 384)
    assert model.encoder.blocks[0].attn.num_heads == 6 and cfg.model.depth == 12
    assert model.masker.num_visible == 98 and model.masker.alphas == (1.0, 1.0, 1.0)
    tokens = model.tokenize(torch.zeros(1, 5, 224, 224))
    assert tokens.num_tokens == 3 * 196
    decoder = model.decoder.decoders["rgb"]
    assert decoder.proj_context.out_features == 256 and len(decoder.blocks) == 2
    assert decoder.cross_attention.num_heads == 8 and set(model.decoder.decoders) == {"rgb", "norm_rgb"}
    epoch = 89_434 // 256
    assert cfg.schedule.max_iters == 1600 * epoch and cfg.schedule.warmup_iters == 40 * epoch
    assert (cfg.schedule.blr, cfg.schedule.weight_decay, tuple(cfg.schedule.betas)) == (1e-4, 0.05, (0.9, 0.95))
    assert cfg.data.dataset.exclude == ["BACK"] and cfg.data.transform.crop == "aligned"
    assert tuple(cfg.probe.label_counts) == (100, 1000)


def test_demo_configs_train_mmae_and_sd_mae(tmp_path):
    from maekit.engine import load_config, train

    for config in ("mmae_demo_tiles", "sdmae_demo_tiles"):
        runner = train(config, tmp_path / config, overrides=TINY, device="cpu")
        assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current()))
        assert (tmp_path / config / "iter_2.pth").is_file()
    sd_mae = build("model", load_config("sdmae_demo_tiles").model)
    assert sd_mae.self_distillation == 1.0 and sd_mae.patchifier.modalities == (("rgb", 3),)


def test_few_label_evaluation_and_fine_tuning_commands_on_a_trained_checkpoint(tmp_path):
    from maekit.engine import load_config

    cfg = load_config("mmae_demo_tiles")
    cfg.merge_from_dict({**TINY, "finetune.schedule.max_iters": 2, "finetune.schedule.warmup_iters": 0})
    cfg.dump(str(tmp_path / "tiny_mmae.py"))
    maekit("train", str(tmp_path / "tiny_mmae.py"), "--work-dir", str(tmp_path / "work"))
    out = tmp_path / "few.json"
    maekit("pathology-eval", str(tmp_path / "tiny_mmae.py"), "--checkpoint", str(tmp_path / "work" / "iter_2.pth"),
           "--labels", "16", "--folds", "2", "--out", str(out))
    metrics = json.loads(out.read_text())
    for key in ("linear_16_labels_mean", "knn10_16_labels_mean", "knn20_16_labels_std"):
        assert 0 <= metrics[key] <= 1, key
    failed = maekit("pathology-eval", str(tmp_path / "tiny_mmae.py"), "--labels", "13", "--folds", "2", check=False)
    assert failed.returncode != 0 and "cannot be split evenly over 8 classes" in failed.stderr
    # few-label fine-tuning of the RGB encoder: 160 class-balanced labels (fold 0 of 5)
    maekit("finetune", str(tmp_path / "tiny_mmae.py"), "--checkpoint", str(tmp_path / "work" / "iter_2.pth"),
           "--work-dir", str(tmp_path / "fine"))
    tuned = json.loads((tmp_path / "fine" / "metrics.json").read_text())
    assert 0 <= tuned["top1_accuracy"] <= 1 and (tmp_path / "fine" / "iter_2.pth").is_file()
    assert len(build("dataset", cfg.finetune.data.dataset)) == 160


def test_demo_writes_metrics_and_picture(tmp_path):
    from maekit.engine import load_config
    from maekit_pathology.demo import run_pathology_demo

    cfg = load_config("mmae_demo_tiles")
    cfg.merge_from_dict(TINY)
    cfg.dump(str(tmp_path / "tiny_mmae.py"))
    metrics = run_pathology_demo(tmp_path / "out", config=str(tmp_path / "tiny_mmae.py"), log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written == metrics and written["iterations"] == 2
    for key in ("probe_accuracy_pretrained", "probe_accuracy_random_init", "knn_accuracy_pretrained",
                "few_label_linear_40_labels_mean_pretrained", "few_label_knn20_40_labels_mean_random_init"):
        assert 0 <= written[key] <= 1, key
    from PIL import Image

    assert Image.open(written["picture"]).size[0] > 7 * 32  # seven panels per row


def test_a_tour_over_tiles_mixing_good_blank_grayscale_and_corrupt_ones(tmp_path):
    import numpy as np
    from PIL import Image
    from test_pathology_data import he_tile

    root = tmp_path / "NCT"
    for cls, count in (("TUM", 6), ("STR", 6)):
        (root / cls).mkdir(parents=True)
        for k in range(count):
            Image.fromarray(he_tile(32, seed=k + 10 * len(cls))).save(root / cls / f"{cls}-{k:04d}.png")
    (root / "BACK").mkdir()
    Image.fromarray(np.full((32, 32, 3), 244, np.uint8)).save(root / "BACK" / "BACK-0000.png")
    Image.fromarray(np.repeat(he_tile(32)[..., :1], 3, axis=-1)).save(root / "TUM" / "TUM-gray.png")
    (root / "STR" / "STR-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cache = tmp_path / "stains"
    printed = maekit("pathology-stains", str(root), "--out", str(cache), "--method", "ruifrok", "--exclude", "BACK",
                     check=False)
    assert printed.returncode == 1 and "STR-corrupt.png" in printed.stderr  # a corrupt tile stops it, named
    (root / "STR" / "STR-corrupt.png").rename(tmp_path / "STR-corrupt.png")
    maekit("pathology-stains", str(root), "--out", str(cache), "--exclude", "BACK")
    (tmp_path / "STR-corrupt.png").rename(root / "STR" / "STR-corrupt.png")
    tiles = dict(type="pathology_tiles", root=str(root), exclude=["BACK"], on_error="skip")
    config = tmp_path / "mine.py"
    config.write_text(f"""_base_ = ["mmae_demo_tiles.py"]
data = dict(dataset=dict(_delete_=True, **{dict(tiles, stains="cache", stain_cache=str(cache))!r}), batch_size=4)
probe = dict(train={tiles!r}, test={tiles!r})
""".replace('["mmae_demo_tiles.py"]', repr([str(Path(maekit_pathology.__file__).parent / "configs" / "mmae_demo_tiles.py")])))
    options = [f"{k}={v}" for k, v in TINY.items() if k != "data.batch_size"]
    maekit("train", str(config), "--work-dir", str(tmp_path / "work"), "--cfg-options", *options)
    assert (tmp_path / "work" / "iter_2.pth").is_file()
    dataset = build("dataset", tiles)
    served = [dataset[i]["inputs"].shape for i in range(len(dataset))]
    assert len(served) == 14 and set(served) == {(3, 32, 32)}
    assert sorted(p.name for p in dataset.skipped_files) == ["STR-corrupt.png", "TUM-gray.png"]
    assert "grayscale" in dataset.skipped_files[root / "TUM" / "TUM-gray.png"]
