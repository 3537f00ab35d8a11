"""maekit-pointcloud as a plugin: what it registers, that it stands alone with core, its configs,
training, the evaluation and conversion commands, the rendered clouds and the demo."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch

import maekit_pointcloud
from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build
from maekit_pointcloud import plugin

PREFIXES = ("point", "mae3d", "shapenet", "modelnet", "scanobjectnn")
COMMANDS = ("pointcloud-eval", "pointcloud-convert")
TWO_STEPS = {"schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2, "log_interval": 1,
             "model.depth": 1, "model.decoder_depth": 1, "data.batch_size": 4,
             "data.dataset.per_class": 2, "svm.train.per_class": 2, "svm.test.per_class": 1}


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-pointcloud"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-pointcloud", maekit_pointcloud.__version__, plugin,
                                   PREFIXES, commands=COMMANDS)


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-pointcloud", maekit_pointcloud.__version__, plugin,
                       configs=("point_mae_shapenet55", "mae3d_shapenet", "point_mae_demo", "mae3d_demo"),
                       demo="pointcloud\tmaekit_pointcloud.demo:run_pointcloud_demo", commands=COMMANDS)


def test_paper_configs_have_the_references_sizes_and_recipes():
    from maekit.engine import load_config

    cfg = load_config("point_mae_shapenet55")
    model = build("model", {**cfg.model, "depth": 1, "decoder_depth": 1})
    tokens = model.tokenize(torch.rand(1, 1024, 3))
    assert (tokens.num_tokens, tokens.meta["group_size"], tokens.meta["recentred"]) == (64, 32, True)
    assert model.make_mask(tokens).num_visible == 26 and model.encoder.embed_dim == 384 and cfg.model.depth == 12
    assert model.encoder.blocks[0].attn.num_heads == 6 and model.encoder.blocks[0].attn.qkv.bias is None
    assert cfg.schedule.blr * cfg.data.batch_size / 256 == 1e-3 and cfg.schedule.weight_decay == 0.05
    assert cfg.schedule.max_iters == 30 * cfg.schedule.warmup_iters  # 300 epochs, 10 of warm-up
    cfg = load_config("mae3d_shapenet")
    model = build("model", {**cfg.model, "depth": 1, "decoder_depth": 1})
    tokens = model.tokenize(torch.rand(1, 2048, 3))
    assert (tokens.num_tokens, tokens.meta["group_size"], tokens.meta["recentred"]) == (32, 64, False)
    assert model.make_mask(tokens).num_visible == 10 and type(model.masker).__name__ == "PointBlockMasker"
    attention = model.encoder.blocks[0].attn
    assert (model.encoder.embed_dim, attention.num_heads, attention.head_dim) == (1024, 8, 64)
    assert model.encoder.blocks[0].mlp.fc1.out_features == 2048 and model.decoder.grid.shape == (2, 64)
    assert cfg.schedule.blr * cfg.data.batch_size / 256 == 1e-4 and cfg.schedule.weight_decay == 1e-4
    assert cfg.data.dataset.key == "data" and cfg.model.cloud_weight == 0.1


def test_every_demo_config_trains(tmp_path):
    from maekit.engine import train

    for config in ("point_mae_demo", "mae3d_demo"):
        runner = train(config, tmp_path / config, overrides=TWO_STEPS, device="cpu")
        assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current())), config
        assert (tmp_path / config / "iter_2.pth").is_file()


def test_finetuning_command_trains_pointmaes_head_on_the_encoder(tmp_path):
    printed = maekit("pointcloud-eval", "point_mae_demo", "--protocol", "finetune", "--work-dir", str(tmp_path / "ft"),
                     "--out", str(tmp_path / "ft.json"), "--cfg-options", "model.depth=1", "model.decoder_depth=1",
                     "finetune.schedule.max_iters=2", "finetune.schedule.warmup_iters=0", "finetune.data.batch_size=4",
                     "finetune.data.dataset.per_class=2", "finetune.test.per_class=1")
    metrics = json.loads((tmp_path / "ft.json").read_text())
    assert metrics["protocol"] == "finetune" and 0 <= metrics["top1_accuracy"] <= 1 and "top1_accuracy" in printed.stdout
    from maekit.io.checkpoint import load_state_dict

    state = load_state_dict(tmp_path / "ft" / "iter_2.pth")
    assert state["model.head.8.weight"].shape == (8, 256)  # Point-MAE's head: … → 256 → classes


def test_svm_evaluation_and_conversion_commands(tmp_path):
    from test_pointcloud_model import point_mae_official_state

    printed = maekit("pointcloud-eval", "point_mae_demo", "--cfg-options", "svm.train.per_class=3",
                     "svm.test.per_class=2", "--out", str(tmp_path / "svm.json"))
    metrics = json.loads((tmp_path / "svm.json").read_text())
    assert metrics["test_samples"] == 16 and 0 <= metrics["svm_accuracy"] <= 1 and "svm_accuracy" in printed.stdout
    failed = maekit("pointcloud-eval", "point_mae_demo", "--cfg-options", "svm=None", check=False)
    assert failed.returncode != 0 and "no 'svm' section" in failed.stderr
    # an official Point-MAE checkpoint as its runner saves it, converted, then read by maekit
    torch.save({"base_model": point_mae_official_state(dim=32, depth=1, decoder_depth=1, group_size=16), "epoch": 3,
                "metrics": {"acc": 0.0}}, tmp_path / "ckpt-last.pth")
    maekit("pointcloud-convert", str(tmp_path / "ckpt-last.pth"), str(tmp_path / "converted.safetensors"))
    from maekit.eval.probe import load_trained_model

    model = load_trained_model(dict(type="point_mae", embed_dim=32, depth=1, num_heads=2, decoder_depth=1,
                                    decoder_num_heads=2, num_groups=32, group_size=16), tmp_path / "converted.safetensors")
    assert model.decoder.pred.weight.shape == (48, 32)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    failed = maekit("pointcloud-convert", str(tmp_path / "junk.pth"), str(tmp_path / "x.pth"), check=False)
    assert failed.returncode != 0 and "junk.pth" in failed.stderr


def test_rendered_clouds_show_input_visible_and_reconstruction():
    from maekit_pointcloud.visualize import point_cloud_panels

    torch.manual_seed(0)
    for model in (build("model", dict(type="point_mae", num_groups=16, group_size=8, embed_dim=32, depth=1, num_heads=2,
                                      decoder_depth=1, decoder_num_heads=2)),
                  build("model", dict(type="mae3d", num_groups=8, group_size=16, embed_dim=32, depth=1, num_heads=2,
                                      head_dim=8, mlp_dim=32, decoder_embed_dim=32, decoder_depth=1,
                                      decoder_num_heads=2, edgeconv_k=4))):
        rows = point_cloud_panels(model, torch.rand(2, 128, 3) - 0.5, size=64)
        assert len(rows) == 2 and [panel.shape for panel in rows[0]] == [(64, 64, 3)] * 3
        source, seen, recon = rows[0]
        assert (source[..., 2] > source[..., 0] + 60).any()  # the input in blue
        assert ((seen > 150).all(-1) & (seen < 230).all(-1)).any()  # masked patches in grey
        assert ((recon[..., 0] > 150) & (recon[..., 1] < 120)).any()  # predicted points in red


def test_demo_writes_metrics_and_picture(tmp_path):
    from pathlib import Path

    from maekit_pointcloud.demo import run_pointcloud_demo

    small = "dict(type='point_cloud_demo_shapes', per_class=3, num_points=512, split="  # the demo, fewer clouds
    (tmp_path / "small.py").write_text(
        f"_base_ = ['{Path(maekit_pointcloud.__file__).parent / 'configs' / 'point_mae_demo.py'}']\n"
        f"data = dict(dataset=dict(per_class=3))\n"
        f"probe = dict(_delete_=True, train={small}'train'), test={small}'test'), pools=('mean',))\n")
    metrics = run_pointcloud_demo(tmp_path / "out", config=str(tmp_path / "small.py"), max_iters=2, log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written == metrics and written["iterations"] == 2
    for key in ("probe_accuracy_pretrained", "probe_accuracy_random_init", "svm_accuracy_pretrained",
                "svm_accuracy_random_init", "knn_accuracy_pretrained"):
        assert 0 <= written[key] <= 1, key
    from PIL import Image

    assert Image.open(written["reconstructions"]).size[0] >= 3 * 128  # input | visible | reconstruction


def test_a_tour_over_a_folder_mixing_good_and_bad_clouds_trains_on_the_good_and_lists_the_bad(tmp_path):
    import numpy as np

    from maekit_pointcloud import data as cloud_data

    root = tmp_path / "scans"
    rng = np.random.default_rng(0)
    for name in ("chair", "lamp"):
        (root / name).mkdir(parents=True)
        for k in range(3):
            np.save(root / name / f"good{k}.npy", rng.normal(size=(600, 3)) * (1 + k))
    points = rng.normal(size=(600, 3)).astype("<f4")
    header = (b"ply\nformat binary_little_endian 1.0\nelement vertex 600\nproperty float x\nproperty float y\n"
              b"property float z\nend_header\n")
    (root / "chair" / "cut.ply").write_bytes(header + points.tobytes()[:3000])  # a download cut short
    bad = rng.normal(size=(600, 3))
    bad[5] = np.nan
    np.save(root / "lamp" / "nan.npy", bad)
    np.save(root / "lamp" / "short.npy", rng.normal(size=(100, 3)))
    folder = dict(type="point_cloud_folder", root=str(root), on_error="skip", min_points=512)
    config = tmp_path / "scans.py"
    config.write_text(f"""_base_ = ["point_mae_demo.py"]
model = dict(depth=1, decoder_depth=1)
data = dict(dataset=dict(_delete_=True, **{folder!r}), batch_size=4)
svm = dict(_delete_=True, train={folder!r}, test={folder!r}, c=1.0)
probe = dict(_delete_=True, train={folder!r}, test={folder!r}, pools=("mean",))
""".replace('["point_mae_demo.py"]', repr([str(Path(cloud_data.__file__).parent / "configs" / "point_mae_demo.py")])))
    maekit("train", str(config), "--work-dir", str(tmp_path / "work"), "--device", "cpu", "--cfg-options",
           "schedule.max_iters=2", "schedule.warmup_iters=0", "checkpoint_interval=2")
    maekit("pointcloud-eval", str(config), "--checkpoint", str(tmp_path / "work" / "iter_2.pth"),
           "--out", str(tmp_path / "svm.json"))
    metrics = json.loads((tmp_path / "svm.json").read_text())
    skipped = {Path(name).name: reason for name, reason in metrics["skipped_files"].items()}
    assert set(skipped) == {"cut.ply", "nan.npy", "short.npy"}
    assert "truncated" in skipped["cut.ply"] and "NaN" in skipped["nan.npy"] and "fewer than the 512" in skipped["short.npy"]
    assert metrics["train_samples"] == 9 and 0 <= metrics["svm_accuracy"] <= 1  # bad ones replaced by good ones
    maekit("visualize", str(tmp_path / "work" / "iter_2.pth"), "--config", str(config), "--out",
           str(tmp_path / "clouds.png"), "--num", "4")
    assert (tmp_path / "clouds.png").stat().st_size > 1000
