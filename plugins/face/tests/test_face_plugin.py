"""maekit-face: what it registers, its loss against an independent computation, and its config
training. Run alone with: MAEKIT_PLUGINS=maekit-face python -m pytest tests"""
from __future__ import annotations

import torch

from maekit.registry import KINDS, build, registry_for
from maekit.structures import Mask

import maekit_face
from maekit_face import plugin


def test_face_registers_only_its_own_names(fresh_registries):
    record = fresh_registries.load("maekit-face", maekit_face.__version__, lambda: plugin)
    assert record.status == "loaded", record.error
    registered = {(kind, entry.name) for kind in KINDS for entry in registry_for(kind).entries.values()}
    assert registered == {(kind, name) for kind, name, _ in plugin.COMPONENTS}
    for kind, name, _ in plugin.COMPONENTS:
        assert (registry_for(kind).get(name).__doc__ or "").strip(), f"{kind} {name} needs a docstring"


def test_face_loss_weighs_removed_and_visible_tokens():
    pred, target = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    masked = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    mask = Mask(ids_keep=torch.zeros(2, 1, dtype=torch.long), ids_restore=torch.zeros(2, 4, dtype=torch.long), masked=masked)
    per_token = ((pred - target) ** 2).mean(-1)
    weights = masked + 0.25 * (1 - masked)
    expected = (per_token * weights).sum() / weights.sum()
    loss = build("loss", dict(type="face_weighted_mse", visible_weight=0.25))(pred, target, mask)
    assert torch.allclose(loss["loss"], expected)


def test_face_demo_config_trains(tmp_path):
    from maekit.engine import train

    overrides = {"schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2, "log_interval": 1}
    runner = train("face_demo", tmp_path, overrides=overrides, device="cpu")
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current()))
    assert (tmp_path / "iter_2.pth").is_file()
