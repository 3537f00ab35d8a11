"""The set-up's plugin-to-plugin dependency order (.ci/plugin_deps.py): a plugin's environment gets
the plugins it declares from plugins/, theirs first, each once; a cycle is an error."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "plugin_deps.py"


def load_script():
    spec = importlib.util.spec_from_file_location("plugin_deps", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_plugin(root: Path, name: str, needs: list[str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    dependencies = ", ".join(f'"{n}"' for n in ["maekit", "torch>=2.6,!=2.13.0", *needs])
    (folder / "pyproject.toml").write_text(f'[project]\nname = "maekit-{name}"\ndependencies = [{dependencies}]\n')
    return folder


def test_declared_plugins_come_first_each_once(tmp_path):
    deps = load_script()
    c = write_plugin(tmp_path, "c", [])
    b = write_plugin(tmp_path, "b", ["maekit_c>=0.1"])  # any spelling pip accepts
    a = write_plugin(tmp_path, "a", ["maekit-b", "maekit-c ; python_version >= '3.8'", "numpy"])
    known = deps.local_plugins(tmp_path)
    assert deps.install_order(a, known, []) == [c, b, a]
    assert deps.install_order(c, known, deps.install_order(a, known, [])) == [c, b, a]


def test_a_cycle_is_an_error(tmp_path):
    deps = load_script()
    a = write_plugin(tmp_path, "a", ["maekit-b"])
    write_plugin(tmp_path, "b", ["maekit-a"])
    with pytest.raises(SystemExit, match="cycle: a -> b -> a"):
        deps.install_order(a, deps.local_plugins(tmp_path), [])


def test_this_repositorys_video_text_plugin_gets_the_video_plugin_first():
    found = subprocess.run([sys.executable, str(SCRIPT), "plugins/videotext", "plugins/video"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    assert found == ["plugins/video", "plugins/videotext"]
