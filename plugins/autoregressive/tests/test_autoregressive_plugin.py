"""maekit-autoregressive: registration, training through core's engine (the palette fitted before the
first step, saved with the run, exact resume), the command line and the demos.
Run alone with: MAEKIT_PLUGINS=maekit-autoregressive python -m pytest plugins/autoregressive/tests"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import maekit_autoregressive
import numpy as np
import torch
from maekit_autoregressive import plugin

from maekit.authoring.testing import check_registers_only_its_names, straight_and_resumed

MODELS = {
    "igpt": 'dict(type="igpt", img_size=8, channels=1, num_colors=8, embed_dim=32, depth=2, num_heads=2, '
            'palette=dict(fit_samples=40))',
    "saim": 'dict(type="saim", size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1, '
            'encoder=dict(embed_dim=32, depth=2, num_heads=2), query_depth=1)',
}
SIZES = {"igpt": 8, "saim": 16}


def tiny_config(folder: Path, method: str, iters: int = 4) -> Path:
    size = SIZES[method]
    path = folder / f"{method}_tiny.py"
    path.write_text(textwrap.dedent(f"""
        model = {MODELS[method]}
        data = dict(dataset=dict(type="digits", split="train", size={size}, channels=1),
                    transform=dict(type="mae_augment", size={size}, scale=(0.6, 1.0), flip=False, mean=(0.5,), std=(0.5,)),
                    batch_size=8)
        schedule = dict(max_iters={iters}, warmup_iters=1, blr=1e-3, weight_decay=0.0)
        checkpoint_interval = 2
        log_interval = 1
        probe = dict(train=dict(type="digits", split="test", size={size}, channels=1),
                     test=dict(type="digits", split="test", size={size}, channels=1), pools=("mean",), layer=1)
    """))
    return path


def test_autoregressive_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-autoregressive", maekit_autoregressive.__version__, plugin,
                                   prefixes=("igpt", "saim", "palette", "gpt", "random_order", "blurred"))


def test_igpt_fits_its_palette_first_saves_it_and_resumes_bit_identically(tmp_path):
    straight, resumed = straight_and_resumed(tiny_config(tmp_path, "igpt"), tmp_path, iters=4, interrupt_at=2)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    centres = straight["model.patchifier.tokenizer.centres"]
    assert bool(straight["model.patchifier.tokenizer.is_fitted"]) and len(torch.unique(centres)) == 8
    # the run's palette file is iGPT's kmeans_centers.npy layout, the checkpoint's centres
    saved = np.load(tmp_path / "straight" / "palette.npy", allow_pickle=False)
    assert saved.shape == (8, 1) and np.array_equal(saved, centres.numpy())


def run_maekit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maekit", *args], capture_output=True, text=True, timeout=300)


def test_saim_trains_and_probes_a_middle_layer_from_the_command_line(tmp_path):
    config = tiny_config(tmp_path, "saim", iters=2)
    trained = run_maekit("train", str(config), "--work-dir", str(tmp_path / "work"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = tmp_path / "probe.json"
    probed = run_maekit("probe", str(config), "--checkpoint", str(tmp_path / "work" / "iter_2.pth"), "--out", str(out))
    assert probed.returncode == 0, probed.stderr[-2000:]
    assert json.loads(out.read_text())["layer"] == 1  # the config's probe.layer
    wrong = run_maekit("probe", str(config), "--layer", "7")
    assert wrong.returncode != 0 and "Error: probe layer 7 is outside the encoder's 2 blocks" in wrong.stderr


def test_an_untrained_igpt_is_refused_with_a_clear_error(tmp_path):
    result = run_maekit("probe", str(tiny_config(tmp_path, "igpt")))
    assert result.returncode != 0 and "Error: PaletteTokenizer has not been fitted" in result.stderr
    assert "Traceback" not in result.stderr


PROBE = ("probe = dict(train=dict(type='digits', split='test', size={size}, channels=1),\n"
         "             test=dict(type='digits', split='test', size={size}, channels=1), pools=('mean',){layer})\n")


def test_demos_are_offered_by_name():
    from maekit.plugins import demos

    assert {name: demos()[name] for name in ("igpt", "saim")} == {
        "igpt": "igpt_demo_digits", "saim": "maekit_autoregressive.demo:run_saim_demo"}


def test_igpt_demo_runs_and_draws_completions(tmp_path):
    # the smoke test: two iterations and a small probe (the full demo is `maekit demo igpt`)
    from maekit.configs import find_config
    from maekit.eval.demo import run_named_demo

    config = tmp_path / "igpt.py"
    config.write_text(f"_base_ = [{str(find_config('igpt_demo_digits'))!r}]\n" + PROBE.format(size=16, layer=", layer=2"))
    metrics = run_named_demo("igpt", tmp_path / "igpt", config=str(config), max_iters=2, log=lambda *_: None)
    assert 0 <= metrics["probe_accuracy_pretrained"] <= 1 and "block 2" in metrics["probe_features"]
    picture = Path(metrics["reconstructions"])
    assert picture.is_file() and picture.stat().st_size > 0


def test_saim_demo_runs_beside_mae(tmp_path):
    from maekit_autoregressive.demo import run_saim_demo

    from maekit.configs import find_config

    config = tmp_path / "saim.py"
    config.write_text(f"_base_ = [{str(find_config('saim_demo_digits'))!r}]\n" + PROBE.format(size=32, layer=""))
    metrics = run_saim_demo(tmp_path / "saim", config=str(config), max_iters=2, log=lambda *_: None)
    assert 0 <= metrics["mae_probe_accuracy_pretrained"] <= 1 and Path(metrics["picture"]).is_file()


def test_the_shipped_folder_configs_train_on_an_image_folder(tmp_path):
    # the real configs (iGPT-S on a folder, SAIM ViT-B on ImageNet's layout), shrunk by overrides,
    # on PNG files in class folders: an RGB palette fitted on them, then two steps each
    from PIL import Image

    from maekit.configs import find_config

    generator = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for index in range(6):
            pixels = (generator.random((20, 24, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{index}.png")
    shrink = {
        "igpt_s_folder": "model = dict(img_size=8, num_colors=8, embed_dim=32, depth=2, num_heads=2, palette=dict(fit_samples=12))\n"
                         "data = dict(dataset=dict(root=ROOT), transform=dict(size=8), batch_size=4, num_workers=0)\n",
        "saim_vit_base_in1k": "model = dict(size=None, encoder_name='vit_tiny_patch16_224', img_size=16, patch_size=4, "
                              "encoder=dict(embed_dim=32, depth=2, num_heads=2), query_depth=2)\n"
                              "data = dict(dataset=dict(root=ROOT), transform=dict(size=16), batch_size=4, num_workers=0)\n",
    }
    for name, overrides in shrink.items():
        config = tmp_path / f"{name}.py"
        config.write_text(f"_base_ = [{str(find_config(name))!r}]\n"
                          + overrides.replace("ROOT", repr(str(tmp_path / "images")))
                          + "schedule = dict(max_iters=2, warmup_iters=0, accumulate=1)\ncheckpoint_interval = 2\n")
        result = run_maekit("train", str(config), "--work-dir", str(tmp_path / name))
        assert result.returncode == 0, result.stderr[-2000:]
        assert (tmp_path / name / "iter_2.pth").is_file()
    palette = np.load(tmp_path / "igpt_s_folder" / "palette.npy")
    assert palette.shape == (8, 3) and np.abs(palette).max() <= 1
