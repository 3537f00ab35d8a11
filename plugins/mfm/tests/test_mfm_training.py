"""MFM trains (ViT and CNN), and the maekit command runs it end to end: train, probe, visualise,
fine-tune, demo."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from maekit.authoring.testing import run_cli as maekit
from maekit.data.bundled import DigitsDataset
from maekit.registry import build

TINY_VIT = dict(type="mfm", encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4, in_chans=1,
                encoder=dict(embed_dim=64, depth=2, num_heads=4), radius_inner=3)
TINY_CNN = dict(type="mfm", encoder_name="resnet18", img_size=32, in_chans=1, radius_inner=3, sample_ratio=0.3,
                encoder=dict(layers=(1, 1, 1, 1)))  # timm's ResNet with one block per stage


@pytest.mark.parametrize("config", [TINY_VIT, TINY_CNN], ids=["vit", "cnn"])
def test_vit_and_cnn_train_with_decreasing_loss(config):
    torch.manual_seed(0)
    model = build("model", config)
    images = (DigitsDataset("train", size=32).images[:32] - 0.5) / 0.5
    noise = torch.rand(32, 1, generator=torch.Generator().manual_seed(0))  # the same corruptions every step
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = model({"inputs": images}, noise=noise)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


def test_sibling_corruptions_and_the_transformer_decoder_train():
    for extra in (dict(corruption="super_resolution", sr_factor=4), dict(corruption="deblur"),
                  dict(corruption="denoise"), dict(decoder_depth=1, decoder_embed_dim=32, decoder_num_heads=2)):
        torch.manual_seed(0)
        model = build("model", {**TINY_VIT, **extra})
        images = (DigitsDataset("train", size=32).images[:16] - 0.5) / 0.5
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        first = None
        for _ in range(10):
            torch.manual_seed(1)  # the same noise / blur draws every step
            loss = model({"inputs": images}, noise=torch.full((16, 1), 0.5))["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            first = first if first is not None else loss.item()
        assert loss.item() < first, extra


def test_trains_on_rgb_photo_tiles_with_imagenet_statistics():
    """scikit-image's photographs as 32-px RGB tiles through maekit's MAE augmentation."""
    from maekit.data.bundled import ImageTilesDataset
    from maekit.data.views import MAEAugment

    tiles = ImageTilesDataset(sources=("astronaut", "coffee"), tile=32)
    augment = MAEAugment(size=32)
    torch.manual_seed(0)
    images = torch.stack([augment(tiles[i]["inputs"]) for i in range(16)])
    model = build("model", {**TINY_VIT, "in_chans": 3})
    assert torch.allclose(model.pixel_mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = model({"inputs": images}, noise=torch.full((16, 1), 0.2))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_commands_train_probe_visualize_finetune(tmp_path):
    work = tmp_path / "work"
    quick = ("--cfg-options", "schedule.max_iters=3", "schedule.warmup_iters=0", "checkpoint_interval=3",
             "data.batch_size=16", "finetune.schedule.max_iters=2", "finetune.schedule.warmup_iters=0")
    maekit("train", "mfm_demo_vit", "--work-dir", str(work), *quick)
    checkpoint = work / "iter_3.pth"
    assert checkpoint.is_file()
    metrics = json.loads(maekit("probe", "mfm_demo_vit", "--checkpoint", str(checkpoint), "--pool", "mean").stdout)
    assert 0.1 < metrics["linear_probe_accuracy"] <= 1.0 and 0.1 < metrics["knn_accuracy"] <= 1.0
    picture = tmp_path / "mfm.png"
    maekit("visualize", str(checkpoint), "--config", "mfm_demo_vit", "--out", str(picture), "--num", "3", "--scale", "1")
    # 3 rows × 5 panels (input | kept frequencies | corrupted | reconstruction | pasted), 32 px, 2 px gaps,
    # under a band of column titles
    width, height = Image.open(picture).size
    assert width == 5 * 34 + 2 and height > 3 * 34 + 2
    maekit("finetune", "mfm_demo_vit", "--checkpoint", str(checkpoint), "--work-dir", str(tmp_path / "ft"), *quick)
    finetuned = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert 0.0 <= finetuned["top1_accuracy"] <= 1.0 and finetuned["checkpoint"] == str(checkpoint)


def test_cnn_has_no_class_token_to_probe(tmp_path):
    result = maekit("probe", "mfm_demo_resnet", "--pool", "cls", check=False)
    assert result.returncode != 0 and "needs an encoder with a class token" in result.stderr


def test_named_demo_runs_the_cnn_config(tmp_path):
    from maekit.eval.demo import run_named_demo

    metrics = run_named_demo("mfm", tmp_path / "cnn", config="mfm_demo_resnet", max_iters=3, log=lambda m: None)
    assert metrics["config"] == "mfm_demo_resnet" and metrics["iterations"] == 3
    for key in ("probe_accuracy_pretrained", "probe_accuracy_random_init", "knn_accuracy_pretrained",
                "knn_accuracy_random_init", "final_loss", "seconds"):
        assert key in metrics, key
    assert "cls_probe_accuracy_pretrained" not in metrics  # a CNN has no class token: mean pool only
    # BatchNorm statistics are re-estimated on the probe images: random init is not collapsed
    assert metrics["probe_accuracy_random_init"] > 0.5
    assert (tmp_path / "cnn" / "reconstructions.png").is_file()
