"""maekit-mfm as a plugin: what it registers, and that it stands alone with core."""
from __future__ import annotations

import json
import subprocess

import pytest

import maekit_mfm
from maekit.authoring.testing import run_cli
from maekit.registry import KINDS, registry_for
from maekit_mfm import plugin


def maekit(*args: str, only: str | None = None) -> subprocess.CompletedProcess:
    # only this plugin (and core) loads, whatever else is installed
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": only} if only else None)


def test_registers_only_its_own_names(fresh_registries):
    record = fresh_registries.load("maekit-mfm", maekit_mfm.__version__, lambda: plugin)
    assert record.status == "loaded", record.error
    registered = {(kind, entry.name, entry.provider.name) for kind in KINDS for entry in registry_for(kind).entries.values()}
    expected = {(kind, name, "maekit-mfm") for kind, name, _ in plugin.COMPONENTS}
    assert registered == expected  # nothing outside its list, nothing under another provider
    assert all(name.startswith("mfm") for _, name, _ in registered)
    for kind, name, _ in plugin.COMPONENTS:  # every lazy path resolves to a documented object
        target = registry_for(kind).get(name)
        assert target is not None and (target.__doc__ or "").strip(), f"{kind} {name}"


def test_listed_alone_with_core_with_its_version_and_configs_and_demo():
    listing = json.loads(maekit("list", "--plugin", "maekit-mfm", "--json", only="maekit-mfm").stdout)
    rows = {(c["kind"], c["name"]): c for c in listing["components"]}
    assert set(rows) == {(kind, name) for kind, name, _ in plugin.COMPONENTS}
    assert {c["version"] for c in rows.values()} == {maekit_mfm.__version__}
    configs = json.loads(maekit("configs", "--json", only="maekit-mfm").stdout)
    assert {"mfm_vit_base_in1k", "mfm_resnet50_in1k", "mfm_demo_vit", "mfm_demo_resnet"} <= set(configs)
    assert "mfm\tmfm_demo_vit" in maekit("demo", "--list", only="maekit-mfm").stdout


@pytest.mark.parametrize("name", ["mfm_vit_base_in1k", "mfm_resnet50_in1k", "mfm_vit_base_siblings_in1k"])
def test_paper_configs_load_build_and_schedule_the_papers_epochs(name):
    from maekit.engine import load_config
    from maekit.registry import build

    cfg = load_config(name)
    processes = cfg.get("_processes", 1)
    images_per_iteration = cfg.data.batch_size * processes  # an iteration is one batch per process
    assert cfg.data.batch_size * cfg.schedule.accumulate * processes == 2048  # the reference's total batch
    assert cfg.schedule.max_iters * images_per_iteration / 1281167 == pytest.approx(300, rel=0.01)
    assert cfg.schedule.warmup_iters * images_per_iteration / 1281167 == pytest.approx(20, rel=0.01)
    if cfg.get("finetune"):
        assert cfg.finetune.schedule.max_iters * images_per_iteration / 1281167 == pytest.approx(100, rel=0.01)
    small = {**cfg.model, "img_size": 64, "radius_inner": 4}  # the paper's architecture at a small input
    model = build("model", small)
    expected = {"mfm_resnet50_in1k": 0.3}.get(name, 0.5)
    assert getattr(model.masker, "sample_ratio", expected) == expected
    assert sum(p.numel() for p in model.encoder.parameters()) > 20e6  # ViT-B / ResNet-50, not a toy
