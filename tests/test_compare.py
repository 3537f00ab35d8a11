"""`maekit compare`: the same data, budget, seeds and probe for every method; the table, ranking and
plots it writes; resuming a killed compare; refusals before anything trains."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from maekit.configs import CONFIG_DIR
from maekit.eval.compare import CompareSettings, compare
from tests.test_cli import run as run_cli
from tests.test_idx import write_idx

TINY_MAE = """
_base_ = [{base!r}]
model = dict(encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1,
             decoder_num_heads=2, img_size=16{extra})
data = dict(dataset=dict(size=16), transform=dict(size=16), batch_size=16)
"""


def tiny_config(folder: Path, name: str, extra: str = "") -> str:
    path = folder / f"{name}.py"
    path.write_text(TINY_MAE.format(base=str(CONFIG_DIR / "mae_demo_digits.py"), extra=extra))
    return str(path)


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    """A tiny MNIST-style folder: 4 classes, each a bright block in its own quadrant plus noise."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for split, count in (("train", 96), ("t10k", 40)):
        labels = np.arange(count, dtype=np.uint8) % 4
        images = rng.integers(0, 60, size=(count, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            top, left = 14 * (label // 2), 14 * (label % 2)
            images[i, top:top + 14, left:left + 14] += 150
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels, compress=True)
    return folder


def settings_for(configs: list[str], data: Path, **overrides) -> CompareSettings:
    return CompareSettings(configs=configs, data=str(data), **{"iters": 4, "seeds": 2, "eval_points": 2, **overrides})


def test_compare_ranks_methods_on_one_protocol_and_writes_table_and_plots(tmp_path, idx_folder):
    configs = [tiny_config(tmp_path, "tiny_mae"), tiny_config(tmp_path, "tiny_mae_mask50", ", mask_ratio=0.5")]
    out = tmp_path / "compare"
    report = compare(settings_for(configs, idx_folder), out, log=lambda line: None)

    ranking = report["ranking"]
    assert [row["rank"] for row in ranking] == [1, 2]
    means = {name: np.mean([run["evaluations"]["4"]["linear_probe"] for run in runs]) for name, runs in report["runs"].items()}
    assert [row["method"] for row in ranking] == sorted(means, key=lambda name: -means[name])
    for row in ranking:
        runs = report["runs"][row["method"]]
        assert [run["seed"] for run in runs] == [0, 1] and row["seeds"] == [0, 1]
        for run in runs:
            assert sorted(map(int, run["evaluations"])) == [0, 2, 4]  # random init + both checkpoints
            assert run["iterations"] == 4 and run["batch"] == 16 and run["features"] == "mean"
            assert all(0.0 <= e[k] <= 1.0 for e in run["evaluations"].values() for k in ("linear_probe", "knn"))
            assert run["loss_curve"]["iterations"] == [1, 2, 3, 4] and len(run["loss_curve"]["loss"]) == 4
        final = [run["evaluations"]["4"]["linear_probe"] for run in runs]
        assert row["linear_probe"] == pytest.approx(np.mean(final))
        assert row["linear_probe_std"] == pytest.approx(np.std(final, ddof=1))  # the sample deviation over seeds
        assert row["linear_probe_random_init"] == pytest.approx(np.mean([r["evaluations"]["0"]["linear_probe"] for r in runs]))
    # the data was the compare's: the probe saw the IDX folder's 4 classes at the config's 16 px
    assert "the IDX files in" in report["data"]
    table = (out / "compare.md").read_text()
    assert "| rank | method | linear probe |" in table and "tiny_mae_mask50" in table and "± " in table
    for picture in ("loss_curves.png", "linear_probe_vs_budget.png", "knn_vs_budget.png"):
        pixels = np.asarray(Image.open(out / picture).convert("L"))
        assert pixels.shape[0] > 300 and pixels.std() > 5, picture  # a drawn figure, not a blank canvas
    assert json.loads((out / "compare.json").read_text())["ranking"] == json.loads(json.dumps(ranking))
    work = out / "runs" / "tiny_mae" / "seed1" / "work"
    assert (work / "loss_curve.png").is_file() and (work / "iter_2.pth").is_file()
    # checkpoints every iteration to resume from, those that are no evaluation point removed once probed
    assert sorted(p.name for p in work.glob("iter_*.pth")) == ["iter_2.pth", "iter_4.pth"]

    # a compare killed during seed 1 of the first method: its training stopped after iteration 2
    # and nothing after was written; started again, it resumes there and redoes only that run
    run_dir = out / "runs" / "tiny_mae" / "seed1"
    before = json.loads((run_dir / "result.json").read_text())
    for name in ("result.json", "pretrain.json", "eval_4.json", "work/iter_4.pth", "work/loss_history.json"):
        (run_dir / name).unlink()
    (work / "last_checkpoint").write_text(str(work / "iter_2.pth"))
    kept = [out / "runs" / "tiny_mae_mask50" / "seed1" / "result.json", run_dir / "eval_0.json", run_dir / "eval_2.json",
            work / "iter_2.pth"]
    stamps = [path.stat().st_mtime_ns for path in kept]
    again = compare(settings_for(configs, idx_folder), out, log=lambda line: None)
    after = json.loads((run_dir / "result.json").read_text())
    assert after["resumed"] is True and (work / "iter_4.pth").is_file()
    assert [path.stat().st_mtime_ns for path in kept] == stamps  # finished work is not redone
    # iterations 1–2 come from the run before the kill (the checkpoint carried them), 3–4 from the resumed one
    assert after["loss_curve"]["iterations"] == [1, 2, 3, 4]
    assert after["loss_curve"]["loss"][:2] == before["loss_curve"]["loss"][:2]
    assert 0 < after["pretrain_seconds"] < 60
    assert {row["method"] for row in again["ranking"]} == {"tiny_mae", "tiny_mae_mask50"}

    with pytest.raises(ValueError, match="other settings \\(iters: 4 then, 6 now\\)"):
        compare(settings_for(configs, idx_folder, iters=6), out, log=lambda line: None)
    Path(configs[1]).write_text(Path(configs[1]).read_text().replace("mask_ratio=0.5", "mask_ratio=0.6"))
    with pytest.raises(ValueError, match="tiny_mae_mask50.py has changed since this compare started"):
        compare(settings_for(configs, idx_folder), out, log=lambda line: None)


def test_checkpoints_at_every_evaluation_point_when_they_do_not_divide_the_run(tmp_path, idx_folder):
    """5 iterations at 3 points: checkpoints at 2, 4 and the last, 5 (none deleted), each probed."""
    from maekit.eval.compare import budgets_of, plan_method, set_budget

    report = compare(settings_for([tiny_config(tmp_path, "tiny_mae")], idx_folder, iters=5, seeds=1, eval_points=3),
                     tmp_path / "uneven", log=lambda line: None)
    run = report["runs"]["tiny_mae"][0]
    assert sorted(map(int, run["evaluations"])) == [0, 2, 4, 5]
    assert sorted(p.name for p in (tmp_path / "uneven" / "runs" / "tiny_mae" / "seed0" / "work").glob("iter_*.pth")) == [
        "iter_2.pth", "iter_4.pth", "iter_5.pth"]
    plan = plan_method(tiny_config(tmp_path, "tiny_mae"), settings_for([], idx_folder))
    for iters, points, expected in ((14, 5, [0, 3, 6, 9, 12, 14]), (10, 3, [0, 4, 8, 10]), (6, 6, [0, 1, 2, 3, 4, 5, 6])):
        set_budget(plan, iters, points)
        assert budgets_of(plan, points) == expected and len(expected) - 1 <= points


def test_a_wall_clock_budget_gives_each_method_the_iterations_that_fit(tmp_path, idx_folder):
    lines: list[str] = []
    report = compare(settings_for([tiny_config(tmp_path, "tiny_mae")], idx_folder, iters=None, minutes=0.001, seeds=1,
                                  eval_points=1), tmp_path / "timed", log=lines.append)
    run = report["runs"]["tiny_mae"][0]
    assert sorted(map(int, run["evaluations"])) == [0, run["iterations"]]
    assert f"tiny_mae: {run['iterations']} iterations × batch 16" in lines[0] and "ms per iteration measured here" in lines[0]
    assert run["iterations"] == max(1, int(0.06 / run["measured_seconds_per_iteration"]))  # 0.06 s at the speed measured
    # resumed, the method keeps the budget it was given (its speed is not measured again)
    for path in (tmp_path / "timed" / "runs" / "tiny_mae" / "seed0").glob("*.json"):
        path.unlink()
    again = compare(settings_for([tiny_config(tmp_path, "tiny_mae")], idx_folder, iters=None, minutes=0.001, seeds=1,
                                 eval_points=1), tmp_path / "timed", log=lines.append)
    assert again["runs"]["tiny_mae"][0]["iterations"] == run["iterations"]


class Clips(Dataset):
    """A dataset that declares another modality."""

    modality = "video"

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return {"inputs": torch.zeros(3, 4, 16, 16), "label": 0}


def test_compare_refuses_what_cannot_train_on_the_data_before_training(tmp_path, idx_folder, plugin_host, register_plugin):
    register_plugin(maekit_register=lambda registry: registry.register("dataset", Clips, name="clips_for_compare"))
    clips = tmp_path / "clips.py"
    clips.write_text(f"_base_ = [{str(CONFIG_DIR / 'mae_demo_digits.py')!r}]\ndata = dict(dataset=dict(_delete_=True, "
                     f"type='clips_for_compare'))\n")
    out = tmp_path / "refused"
    ok = tiny_config(tmp_path, "tiny_mae")
    with pytest.raises(ValueError, match="trains on video data \\(dataset 'clips_for_compare'\\); the compare data is images"):
        compare(settings_for([ok, str(clips)], idx_folder), out, log=lambda line: None)
    three = tiny_config(tmp_path, "three_channels", ", in_chans=3")  # its data stays one channel: the model refuses it
    with pytest.raises(ValueError, match="three_channels.py cannot train on the compare data \\(idx_images at 16 px\\)"):
        compare(settings_for([ok, three], idx_folder), out, log=lambda line: None)
    assert not (out / "runs").exists()  # refused before anything trained
    with pytest.raises(ValueError, match="--data nowhere: neither a preset \\(fashion_mnist, digits\\)"):
        compare(settings_for([ok], Path("nowhere")), out, log=lambda line: None)
    with pytest.raises(ValueError, match="config tiny_mae given twice"):
        compare(settings_for([ok, ok], idx_folder), out, log=lambda line: None)
    with pytest.raises(ValueError, match="--iters or as --minutes, not both"):
        compare(settings_for([ok], idx_folder, minutes=1.0), out, log=lambda line: None)
    with pytest.raises(ValueError, match="give the budget every method gets"):
        compare(settings_for([ok], idx_folder, iters=None), out, log=lambda line: None)
    with pytest.raises(ValueError, match="--batch must be at least 1, got 0"):
        compare(settings_for([ok], idx_folder, batch=0), out, log=lambda line: None)
    with pytest.raises(ValueError, match="the probe's data \\(--probe-train-size / --probe-test-size\\): idx_images limit 2"):
        compare(settings_for([ok], idx_folder, probe_train_size=2), out, log=lambda line: None)
    assert not (out / "compare_settings.json").exists()  # nothing written: the corrected command is not refused
    with pytest.raises(ValueError, match="different batch sizes \\(tiny_mae: 16, mae_demo_digits: 64\\): give --batch"):
        compare(settings_for([ok, "mae_demo_digits"], idx_folder), out, log=lambda line: None)


def test_compare_command_over_core_mae_mfm_supmae_and_second_wave_methods_on_fashion_mnist(tmp_path):
    """The issue's run at a tiny budget, from one command, on Debian's Fashion-MNIST (installed by
    .ci/setup; the plugins are installed with core's suite): core MAE, MFM, SupMAE, SAIM and CMAE."""
    out = tmp_path / "fashion"
    configs = ["mae_demo_digits", "mfm_demo_vit", "supmae_demo_digits", "saim_demo_digits", "cmae_demo_digits"]
    printed = run_cli("compare", *configs, "--iters", "2", "--batch", "8", "--probe-train-size", "100", "--probe-test-size",
                  "50", "--out", str(out)).stdout
    report = json.loads((out / "compare.json").read_text())
    assert sorted(row["method"] for row in report["ranking"]) == sorted(configs)
    assert "Fashion-MNIST" in report["data"] and "| rank | method |" in printed
    for runs in report["runs"].values():
        assert runs[0]["iterations"] == 2 and runs[0]["batch"] == 8
    bad = run_cli("compare", "mae_demo_digits", "--data", "nowhere", "--iters", "2", "--out", str(tmp_path / "bad"), check=False)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("Error: --data nowhere")


def test_every_installed_dataset_says_its_modality_and_compare_refuses_other_modalities(tmp_path):
    """Core's suite runs with every plugin installed: each dataset declares what it holds (wrappers
    of another dataset excepted), and compare refuses a video or point-cloud method on images."""
    from maekit import plugins
    from maekit.eval.compare import plan_method
    from maekit.registry import entries

    plugins.load_plugins()
    wrappers = {"augmented_view", "streamed_view", "concat_sources", "pathology_label_subset"}
    undeclared = [e.name for e in entries("dataset") if e.name not in wrappers and not isinstance(
        getattr(e.load(), "modality", None), str)]
    assert not undeclared, undeclared
    settings = CompareSettings(configs=[], data="digits")
    for config, modality in (("videomae_demo_moving_digits", "video"), ("point_mae_demo", "point_cloud")):
        with pytest.raises(ValueError, match=f"config {config} trains on {modality} data"):
            plan_method(config, settings)


def test_compare_takes_demo_names_and_fine_tunes_on_request(tmp_path, idx_folder):
    from maekit.eval.compare import resolve_config

    settings = CompareSettings(configs=["mae"], data=str(idx_folder), iters=2, batch=16, finetune=True, finetune_iters=2)
    report = compare(settings, tmp_path / "ft", log=lambda line: None)
    row = report["ranking"][0]
    assert row["method"] == "mae_demo_digits" and 0.0 <= row["finetune"] <= 1.0
    run = report["runs"]["mae_demo_digits"][0]
    assert run["finetune"]["top1"] == row["finetune"]
    assert json.loads((tmp_path / "ft" / "runs" / "mae_demo_digits" / "seed0" / "finetune" / "metrics.json").read_text())[
        "top1_accuracy"] == row["finetune"]
    assert "| fine-tune |" in (tmp_path / "ft" / "compare.md").read_text()
    with pytest.raises(ValueError, match="supmae is a demo of its own"):
        resolve_config("supmae")  # the plugins are installed with core's suite
    # iGPT's decoder-only transformer is no ViT for the fine-tuning classifier: refused before training
    with pytest.raises(ValueError, match="--finetune: config igpt_demo_digits cannot be fine-tuned"):
        compare(CompareSettings(configs=["igpt"], data=str(idx_folder), iters=2, finetune=True), tmp_path / "igpt",
                log=lambda line: None)
    assert not (tmp_path / "igpt" / "runs" / "igpt_demo_digits" / "seed0").exists()
