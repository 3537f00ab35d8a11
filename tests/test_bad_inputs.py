"""The bad-input corpus: each thing a user can get wrong, run through the ``maekit`` command, ends
in one ``Error:`` line that names the file, key or value (exit code 1; 2 for usage errors) — no
raw traceback, no silent success. README.md's "Reliability" section lists these cases."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.test_training import write_tiny_config

SMALL = ("schedule.max_iters=1", "schedule.warmup_iters=0", "checkpoint_interval=1", "log_interval=1")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every bad file the cases need, written once."""
    root = tmp_path_factory.mktemp("bad_inputs")
    write_tiny_config(root)
    (root / "empty").mkdir()
    for name, payload in (("corrupt", b"\xff\xd8\xff\xe0 not really a jpeg"), ("zero_byte", b"")):
        folder = root / name / "a"
        folder.mkdir(parents=True)
        (folder / ("x.jpg" if name == "corrupt" else "x.png")).write_bytes(payload)
    good = root / "good" / "a"
    good.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(good / "x.png")
    (root / "syntax_error.py").write_text("model = dict(type='mae',\n")
    (root / "typo_in_file.py").write_text(f"_base_ = ['{root / 'tiny_digits.py'}']\nschedule = dict(max_iter=3)\n")

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'pwned'}",))

    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Exploit()}, root / "malicious.pth")
    (root / "not_a_dir").write_text("a file")
    (root / "dangling").mkdir()
    (root / "dangling" / "last_checkpoint").write_text(str(root / "dangling" / "iter_9.pth"))
    return root


def tiny(files: Path) -> str:
    return str(files / "tiny_digits.py")


def folder(root: Path) -> str:
    """An override replacing the config's dataset with an image folder."""
    return f"data.dataset={{'_delete_': True, 'type': 'image_folder', 'root': '{root}', 'channels': 1}}"


def train(files: Path, *options: str, work: str = "work") -> list[str]:
    return ["train", tiny(files), "--work-dir", str(files / work), "--device", "cpu", "--cfg-options", *SMALL, *options]


CASES = {
    # -- configs: names, files, keys, values -------------------------------------------------
    "unknown config name": (lambda f: ["train", "no_such_config"], "neither a file nor a known config name"),
    "config with a syntax error": (lambda f: ["train", str(f / "syntax_error.py")], "syntax_error.py: not a valid config file"),
    "typo in a config file": (lambda f: ["train", str(f / "typo_in_file.py")], "typo_in_file.py: schedule.max_iter: unknown key; did you mean max_iters?"),
    "typo'd section on the command line": (lambda f: train(f, "schedul.max_iters=3"), "schedul: unknown key; did you mean schedule?"),
    "typo'd schedule key": (lambda f: train(f, "schedule.max_iter=3"), "schedule.max_iter: unknown key; did you mean max_iters?"),
    "typo'd data key": (lambda f: train(f, "data.batch_sise=4"), "data.batch_sise: unknown key; did you mean batch_size?"),
    "typo'd fine-tuning schedule key": (lambda f: train(f, "finetune.schedule.layer_decy=0.7"), "finetune.schedule.layer_decy: unknown key; did you mean layer_decay?"),
    "override without '='": (lambda f: train(f, "schedule.max_iters"), "expected key=value"),
    "unknown model type": (lambda f: train(f, "model.type=no_such_model"), "unknown model 'no_such_model'"),
    "mask ratio 1.0": (lambda f: train(f, "model.mask_ratio=1.0"), "mask_ratio must be in [0, 1), got 1.0"),
    "mask ratio -0.1": (lambda f: train(f, "model.mask_ratio=-0.1"), "mask_ratio must be in [0, 1), got -0.1"),
    "image size not divisible by the patch": (lambda f: train(f, "model.img_size=18", "data.dataset.size=18", "data.transform.size=18"), "18"),
    "a model argument that does not exist": (lambda f: train(f, "model.decoder_widht=8"), "decoder_widht"),
    "a dataset argument that does not exist": (lambda f: train(f, "data.dataset.colour=1"), "colour"),
    "batch size 0": (lambda f: train(f, "data.batch_size=0"), "batch_size"),
    "nonfinite setting misspelt": (lambda f: train(f, "schedule.nonfinite='sometimes'"), "schedule.nonfinite must be 'stop' or 'skip', got 'sometimes'"),
    "unknown strategy": (lambda f: train(f, "strategy='zero3'"), "strategy must be 'ddp' or 'fsdp', got 'zero3'"),
    "negative warm-up": (lambda f: train(f, "schedule.warmup_iters=-2"), "warmup_iters must be >= 0, got -2"),
    "max_iters 0": (lambda f: train(f, "schedule.max_iters=0"), "max_iters must be at least 1, got 0"),
    # -- data on disk --------------------------------------------------------------------------
    "missing image folder": (lambda f: train(f, folder(f / "nowhere")), "nowhere does not exist or is not a folder"),
    "empty image folder": (lambda f: train(f, folder(f / "empty")), "empty"),
    "corrupt JPEG": (lambda f: train(f, folder(f / "corrupt")), "x.jpg: cannot read image"),
    "zero-byte PNG": (lambda f: train(f, folder(f / "zero_byte")), "x.png: cannot read image"),
    "3-channel data into a 1-channel model": (lambda f: train(f, "data.dataset.channels=3"), "1 channels"),
    # -- work dirs and checkpoints ---------------------------------------------------------------
    "work dir under a file": (lambda f: train(f, work="not_a_dir/run"), "not_a_dir"),
    "resume from a folder": (lambda f: train(f, "--resume", str(f), work="r1")[:6] + ["--resume", str(f)], "not a checkpoint file"),
    "resume from a missing file": (lambda f: ["train", tiny(f), "--work-dir", str(f / "r2"), "--resume", str(f / "gone.pth")], "gone.pth: not a checkpoint file"),
    "resume where last_checkpoint names a missing file": (lambda f: ["train", tiny(f), "--work-dir", str(f / "dangling"), "--resume"], "iter_9.pth, which does not exist"),
    "resume from a checkpoint that would run code": (lambda f: ["train", tiny(f), "--work-dir", str(f / "r3"), "--device", "cpu", "--resume", str(f / "malicious.pth")], "refused to load"),
    "load_from a missing file": (lambda f: train(f, f"load_from='{f / 'missing.pth'}'", work="r4"), "missing.pth"),
    "probe with a checkpoint that would run code": (lambda f: ["probe", tiny(f), "--checkpoint", str(f / "malicious.pth")], "refused to load"),
    "export with a checkpoint that would run code": (lambda f: ["export", str(f / "malicious.pth"), "--config", tiny(f), "--out", str(f / "exported")], "refused to load"),
    "visualize with an unknown config": (lambda f: ["visualize", str(f / "malicious.pth"), "--config", "no_such_config"], "neither a file nor a known config name"),
    "a --plugin file that does not exist": (lambda f: ["--plugin", str(f / "nope.py"), "list"], "nope.py: no such file"),
    # -- plugins' commands and sections ------------------------------------------------------------
    "typo'd plugin section key": (lambda f: ["train", "point_mae_demo", "--cfg-options", "svm.C=1"], "svm.C: unknown key; did you mean c?"),
    "typo'd skeleton evaluation key": (lambda f: ["train", "skeleton_mae_demo", "--cfg-options", "linear_eval.epoch=3"], "linear_eval.epoch: unknown key; did you mean epochs?"),
    "point-cloud converter given a checkpoint that would run code": (lambda f: ["pointcloud-convert", str(f / "malicious.pth"), str(f / "out.pth")], "refused to load"),
    "mesh converter given a checkpoint that would run code": (lambda f: ["mesh-convert", str(f / "malicious.pth"), str(f / "out2.pth")], "refused to load"),
}
USAGE = {  # click's own usage errors: exit code 2
    "unknown --amp": lambda f: ["train", tiny(f), "--amp", "fp8"],
    "unknown command": lambda f: ["trian", tiny(f)],
    "visualize a checkpoint that does not exist": lambda f: ["visualize", str(f / "gone.pth"), "--config", tiny(f)],
}


def run(args: list[str]):
    from maekit.cli import main

    return CliRunner().invoke(main, args, env={"MAEKIT_DEBUG": ""})


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_input_ends_in_one_error_line_naming_it(files, case):
    make_args, expected = CASES[case]
    result = run(make_args(files))
    assert result.exit_code == 1, (result.exit_code, result.output[-2000:], result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and expected in errors[0], result.output[-2000:]
    assert "Traceback" not in result.output
    assert not (files / "pwned").exists()


@pytest.mark.parametrize("case", sorted(USAGE))
def test_a_usage_error_exits_2(files, case):
    result = run(USAGE[case](files))
    assert result.exit_code == 2 and "Error:" in result.output and "Traceback" not in result.output


def test_debug_shows_the_traceback_instead(files):
    from maekit.cli import main

    result = CliRunner().invoke(main, ["--debug", *train(files, "model.mask_ratio=1.0")])
    assert isinstance(result.exception, ValueError) and "mask_ratio" in str(result.exception)


def test_a_warm_up_longer_than_a_shortened_run_is_clipped_and_said(files):
    result = run(train(files, "schedule.warmup_iters=5", work="clipped"))
    assert result.exit_code == 0, result.output[-2000:]
    log = "".join(p.read_text() for p in (files / "clipped").rglob("*.log"))
    assert "schedule.warmup_iters=5 >= max_iters=1: warm-up clipped to 0 iterations" in log


def test_the_corpus_covers_at_least_35_inputs():
    assert len(CASES) + len(USAGE) >= 35


def test_probe_follows_the_configs_pools_unless_told(files):
    import json

    result = run(["probe", tiny(files), "--cfg-options", "probe.pools=('mean',)", "probe.train.size=16", "probe.test.size=16"])
    assert result.exit_code == 0, result.output[-2000:]
    report = json.loads(result.output[result.output.index("{"):])
    assert report["pool"] == "mean"
