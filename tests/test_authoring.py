"""Authoring: `maekit new-plugin` generates a plugin whose tests pass once installed, and
`maekit check-plugin` names what is wrong with a broken one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maekit.authoring.plugin_check import check_plugin
from maekit.authoring.scaffold import create_plugin
from maekit.authoring.testing import run_cli


def test_generated_plugin_installs_lists_checks_and_its_tests_pass(tmp_path):
    run_cli("new-plugin", "fresh_idea", "--out", str(tmp_path / "fresh_idea"))
    assert (tmp_path / "fresh_idea" / "maekit_fresh_idea" / "configs" / "fresh_idea_demo.py").is_file()
    checked = run_cli("check-plugin", str(tmp_path / "fresh_idea"))
    assert "0 error(s), 0 warning(s)" in checked.stdout
    # a real (non-editable) install into a private folder: this environment stays as it was
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(tmp_path / "site"), str(tmp_path / "fresh_idea")], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "MAEKIT_PLUGINS": "maekit-fresh-idea"}
    listing = json.loads(subprocess.run([sys.executable, "-m", "maekit.cli", "list", "--plugin", "maekit-fresh-idea", "--json"],
                                        env=env, capture_output=True, text=True, check=True).stdout)
    rows = {(c["kind"], c["name"], c["plugin"], c["version"]) for c in listing["components"]}
    assert rows == {("model", "fresh_idea", "maekit-fresh-idea", "0.1.0"),
                    ("loss", "fresh_idea_weighted_mse", "maekit-fresh-idea", "0.1.0")}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           cwd=tmp_path / "fresh_idea", env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "3 passed" in tests.stdout


def test_new_plugin_refuses_bad_names_and_occupied_folders(tmp_path):
    with pytest.raises(ValueError, match="must be lower_snake_case"):
        create_plugin("My-Idea", tmp_path / "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists and is not empty"):
        create_plugin("taken", tmp_path / "taken")
    with pytest.raises(ValueError, match="modality 'audio' has no template; available: image"):
        create_plugin("sound", tmp_path / "sound", modality="audio")


def errors_of(path: Path) -> list[str]:
    return [f.message for f in check_plugin(path) if f.level == "error"]


def test_check_plugin_names_each_mistake(tmp_path):
    folder = create_plugin("broken_one", tmp_path / "broken_one")
    package = folder / "maekit_broken_one"
    plugin = package / "plugin.py"
    source = plugin.read_text()
    source = source.replace('("model", "broken_one",', '("model", "mae",')  # clashes with core
    source = source.replace("maekit_demos, maekit_commands =", "maekit_demo, maekit_commands =")  # a typo'd hook name
    source += '\n\n@hookimpl\ndef maekit_sample_data(wrong_argument):\n    return {}\n'
    source = source.replace("import standard_hooks", "import hookimpl, standard_hooks")
    plugin.write_text(source)
    method = package / "method.py"
    text = method.read_text()
    start = text.index('    """Squared error per value')
    method.write_text(text[:start] + text[text.index('"""', start + 7) + 4:])  # the loss class loses its docstring
    (package / "configs" / "broken_one_bad.py").write_text("model = dict(\n")
    (folder / "tests" / "conftest.py").write_text("")
    errors = errors_of(folder)
    assert any("hooks do not match maekit's hookspecs" in e and "wrong_argument" in e for e in errors), errors
    plugin.write_text(source.replace("def maekit_sample_data(wrong_argument)", "def maekit_sample_data()"))
    sys.modules.pop("maekit_broken_one.plugin", None)
    sys.modules.pop("maekit_broken_one", None)
    errors = errors_of(folder)
    assert any("hook 'maekit_demo' is not a maekit hook" in e for e in errors), errors
    assert any("model 'mae': already registered by maekit" in e for e in errors), errors
    assert any("loss 'broken_one_weighted_mse'" in e and "has no docstring" in e for e in errors), errors
    assert any("broken_one_bad.py: does not load" in e for e in errors), errors
    assert any("conftest.py: remove it" in e for e in errors), errors
    (folder / "pyproject.toml").write_text((folder / "pyproject.toml").read_text().replace("[project.entry-points.maekit]\n", "[other]\n"))
    assert any("expected one entry point in [project.entry-points.maekit]" in e for e in errors_of(folder))
    (tmp_path / "notes.txt").write_text("")
    assert "not a plugin folder" in errors_of(tmp_path / "notes.txt")[0]


def test_check_plugin_reads_a_single_local_file(tmp_path):
    good = tmp_path / "my_method.py"
    good.write_text('import maekit\nfrom maekit.nn.losses import MaskedMSELoss\n\n\n'
                    'class TinyLoss(MaskedMSELoss):\n    """Masked MSE, renamed."""\n\n\n'
                    '@maekit.hookimpl\ndef maekit_register(registry):\n    registry.register("loss", TinyLoss, name="tiny_loss")\n')
    findings = check_plugin(good)
    assert not [f for f in findings if f.level == "error"] and any("loss tiny_loss" in f.message for f in findings)
    result = run_cli("check-plugin", str(tmp_path / "nothing_here"), check=False)
    assert result.returncode != 0


def test_contributings_walkthrough_file_works_as_a_local_plugin(tmp_path):
    text = (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text()
    walkthrough = text[text.index("## From an idea this afternoon"):]
    code = walkthrough[walkthrough.index("```python\n") + len("```python\n"):]
    code = code[:code.index("```")]
    (tmp_path / "supmae.py").write_text(code)
    # as the walkthrough's reader has it: before the packaged maekit-supmae exists
    env = {"MAEKIT_DISABLE_PLUGINS": "maekit-supmae"}
    checked = run_cli("check-plugin", str(tmp_path / "supmae.py"), env_extra=env)
    assert "model supmae" in checked.stdout and "0 error(s)" in checked.stdout
    run_cli("--plugin", str(tmp_path / "supmae.py"), "train", "mae_demo_digits", "--work-dir", str(tmp_path / "work"),
            "--device", "cpu", "--cfg-options", "model.type=supmae", "model.num_classes=10", "schedule.max_iters=2",
            "schedule.warmup_iters=0", "checkpoint_interval=2", "log_interval=1", env_extra=env)
    logs = "".join(p.read_text() for p in (tmp_path / "work").rglob("*.log"))
    assert "loss_classification" in logs
