"""The `maekit` command end to end, in subprocesses (so entry-point discovery is the real one)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from maekit.authoring.testing import run_cli
from maekit.builtin import CORE_COMPONENTS
from tests.test_registry_plugins import GOOD_PLUGIN


def run(*args: str, env_extra: dict | None = None, site: Path | None = None, check: bool = True):
    env_extra = dict(env_extra or {})
    if site is not None:
        env_extra["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return run_cli(*args, env_extra=env_extra, check=check, timeout=300)


def test_console_script_and_version():
    script = shutil.which("maekit", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert script, "the maekit console script is not installed"
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "maekit, version 0.1.0"


def test_list_json_shows_every_core_component_with_its_provider():
    listing = json.loads(run("list", "--json").stdout)
    rows = {(c["kind"], c["name"]): c for c in listing["components"]}
    for kind, name, _ in CORE_COMPONENTS:
        assert rows[(kind, name)]["plugin"] == "maekit" and rows[(kind, name)]["version"] == "0.1.0"
        assert rows[(kind, name)]["summary"], f"{kind} {name} has no summary"
    assert {"name": "maekit", "version": "0.1.0", "status": "loaded", "error": ""} in listing["plugins"]
    maskers = json.loads(run("list", "--json", "--kind", "masker").stdout)["components"]
    # core's own (installed plugins may add theirs)
    assert {c["name"] for c in maskers if c["plugin"] == "maekit"} == {"random_mask", "block_mask", "given_mask",
                                                                   "block_plus_random_mask", "tube_mask",
                                                                   "blockwise_mask", "grid_block_mask", "bernoulli_mask",
                                                                   "score_mask"}
    assert all(c["kind"] == "masker" for c in maskers)


def test_every_installed_plugin_loads_beside_the_others():
    """Composition: whatever plugins are installed (in CI: all of plugins/), strict mode loads them
    together — no failure, no clashing names, their configs, demos and commands all offered. Each
    plugin's own tests run with core alone (.ci/test)."""
    from importlib.metadata import entry_points

    installed = {entry.dist.name for entry in entry_points(group="maekit")}
    listing = json.loads(run("--strict", "list", "--json").stdout)
    status = {p["name"]: p["status"] for p in listing["plugins"]}
    assert installed <= set(status) and all(value == "loaded" for value in status.values()), status
    providers = {c["plugin"] for c in listing["components"]}
    assert providers == set(status), (providers, status)
    json.loads(run("--strict", "configs", "--json").stdout)
    run("--strict", "demo", "--list")
    run("--strict", "--help")


def test_broken_and_duplicate_plugins_are_reported_while_the_rest_lists(make_distribution):
    site = make_distribution("maekit-good", "1.2.0", "maekit_good_hooks", GOOD_PLUGIN.format(name="doubler"))
    make_distribution("maekit-broken", "0.3", "maekit_broken_hooks", "raise ImportError('missing libfoo')\n")
    make_distribution("maekit-other", "9.9", "maekit_other_hooks", GOOD_PLUGIN.format(name="doubler"))
    listing = json.loads(run("list", "--json", site=site).stdout)
    plugins = {p["name"]: p for p in listing["plugins"]}
    assert plugins["maekit-broken"]["status"] == "failed" and "missing libfoo" in plugins["maekit-broken"]["error"]
    assert plugins["maekit-other"]["status"] == "failed"
    assert "maekit-good 1.2.0" in plugins["maekit-other"]["error"] and "maekit-other 9.9" in plugins["maekit-other"]["error"]
    names = {(c["name"], c["plugin"], c["version"]) for c in listing["components"]}
    assert ("doubler", "maekit-good", "1.2.0") in names and ("mae", "maekit", "0.1.0") in names
    table = run("list", site=site, env_extra={"COLUMNS": "200"}).stdout
    assert "plugins that failed to load" in table and "maekit-broken" in table
    good_only = json.loads(run("list", "--json", "--plugin", "maekit-good", site=site).stdout)["components"]
    assert {c["name"] for c in good_only} == {"doubler", "doubler_l1"}
    doctor = run("doctor", site=site, check=False)
    assert doctor.returncode == 1 and "failed" in doctor.stdout
    strict = run("--strict", "list", site=site, check=False)
    assert strict.returncode != 0 and "failed to load" in strict.stderr


def test_single_file_plugin_from_the_command_line(tmp_path):
    plugin = tmp_path / "my_method.py"
    plugin.write_text(GOOD_PLUGIN.format(name="my_doubler"))
    listing = json.loads(run("--plugin", str(plugin), "list", "--json", "--plugin", str(plugin.resolve())).stdout)
    assert {c["name"] for c in listing["components"]} == {"my_doubler", "my_doubler_l1"}
    listing = json.loads(run("list", "--json", "--plugin", str(plugin)).stdout)  # a .py path loads that file too
    assert {c["name"] for c in listing["components"]} == {"my_doubler", "my_doubler_l1"}
    described = json.loads(run("--plugin", str(plugin), "info", "my_doubler", "--json").stdout)
    assert described["config_keys"] == {"factor": "2"} and described["plugin"] == str(plugin.resolve())
    missing = run("--plugin", str(tmp_path / "absent.py"), "list", check=False)
    assert missing.returncode != 0 and "absent.py: no such file" in missing.stderr


def test_info_and_unknown_names():
    described = json.loads(run("info", "mae", "--json").stdout)
    assert described["kind"] == "model" and described["plugin"] == "maekit"
    assert described["config_keys"]["mask_ratio"] == "0.75" and described["config_keys"]["norm_pix_loss"] == "True"
    assert described["signature"].startswith("mae(size")
    assert "MAE with a timm ViT encoder" in described["doc"]
    text = run("info", "random_mask").stdout
    assert "provided by maekit 0.1.0" in text and "mask_ratio" in text
    unknown = run("info", "nonexistent_thing", check=False)
    assert unknown.returncode != 0 and "no component named 'nonexistent_thing'" in unknown.stderr
    assert "random_mask" in unknown.stderr
    bad_filter = run("list", "--plugin", "maekit-nothing", check=False)
    assert bad_filter.returncode != 0 and "no such plugin" in bad_filter.stderr


def test_doctor_reports_versions_devices_and_plugins():
    report = json.loads(run("doctor", "--json").stdout)
    assert set(report["versions"]) >= {"torch", "timm", "mmengine", "pluggy", "python"}
    assert report["devices"]["cpu_threads"] >= 1
    assert report["plugins"][0]["name"] == "maekit"


def test_forward_on_a_bundled_sample_and_on_an_image_file(tmp_path):
    out = run("forward", "--size", "tiny", "--img-size", "64").stdout
    assert "on scikit-image sample 'astronaut' at 64px" in out and "loss" in out
    loss = float(out.split("loss ")[1].split(",")[0])
    assert 0.1 < loss < 10
    picture = tmp_path / "picture.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(picture)
    assert "picture.png" in run("forward", "--size", "tiny", "--img-size", "32", "--image", str(picture)).stdout
    bad = run("forward", "--size", "tiny", "--img-size", "50", check=False)
    assert bad.returncode != 0 and "not divisible by the patch size 16×16" in bad.stderr
    bad = run("forward", "--size", "tiny", "--sample", "moon-landing", check=False)
    assert bad.returncode != 0 and "unknown sample image 'moon-landing'" in bad.stderr
