"""maekit-mfm as a plugin: what it registers, and that it stands alone with core."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import maekit_mfm
from maekit.registry import KINDS, registry_for
from maekit_mfm import plugin


def maekit(*args: str, only: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAEKIT_")}
    if only:
        env["MAEKIT_PLUGINS"] = only  # only this plugin (and core) loads, whatever else is installed
    result = subprocess.run([sys.executable, "-m", "maekit.cli", *args], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


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
