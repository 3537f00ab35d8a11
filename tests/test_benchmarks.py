"""The benchmark scripts keep working (figures are printed by them, never asserted on speed)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mae_step_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "step.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mae_step.py"), "--sizes", "tiny",
                             "--precisions", "fp32", "--batch", "2", "--repeats", "1", "--profile", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ratio maekit/transformers" in result.stdout
    report = json.loads(out.read_text())
    assert {r["contender"] for r in report["runs"]} == {"maekit", "transformers"}
    ours, theirs = report["runs"]
    # same model, same FLOPs (the counter sees the same matmuls; masked patches are not embedded by us)
    assert abs(ours["flops_per_step"] - theirs["flops_per_step"]) / theirs["flops_per_step"] < 0.01
    # MFU is a ratio of two timings taken on a shared machine (the peak can be measured while another
    # test holds a core), so only its sign and finiteness are asserted, never a ceiling
    assert report["matmul_peak_flops"]["fp32"] > 0 and 0 < ours["mfu"] < float("inf")
    assert report["machine"]["cores"] >= 1
    # the profile splits each step's whole time into groups; a ViT step is mostly matmuls and attention
    for run in report["runs"]:
        groups = run["time_shares"]
        assert set(groups) == {"attention", "matmul", "copies and casts", "layer norm", "optimiser", "other"}
        shares = {group: part["share"] for group, part in groups.items()}
        assert abs(sum(shares.values()) - 1) < 1e-6 and shares["matmul"] > 0.2 and shares["attention"] > 0
        # the matmul kernels' own rate: the step's FLOPs are mostly theirs, so it exceeds the whole step's
        assert groups["matmul"]["flops_per_s"] > run["flops_per_step"] / run["seconds_per_step"] * 0.5
        assert groups["matmul"]["share_of_peak"] > 0


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_scaling_benchmark_sees_encoder_work_fall_with_the_mask_ratio(tmp_path):
    out = tmp_path / "scaling.json"
    run_script("mae_scaling.py", "--size", "tiny", "--batch", "2", "--ratios", "0,0.75", "--batches", "1,2",
               "--repeats", "1", "--out", str(out))
    report = json.loads(out.read_text())
    full, masked = report["mask_ratio_sweep"]
    assert (full["visible_tokens"], masked["visible_tokens"]) == (196, 49)
    # the encoder runs on the visible quarter only: its FLOPs fall about 4× (plus the cls token)
    assert 0.2 < masked["encoder_forward_flops"] / full["encoder_forward_flops"] < 0.3
    assert [row["batch"] for row in report["memory_vs_batch"]] == [1, 2]
    assert all(row["step_memory_mib"] >= 0 for row in report["memory_vs_batch"])


def test_loader_optimiser_and_list_timing_benchmarks_run(tmp_path):
    out = tmp_path / "loader.json"
    printed = run_script("data_loader.py", "--size", "tiny", "--batch", "2", "--batches", "1", "--workers", "0",
                         "--out", str(out)).stdout
    report = json.loads(out.read_text())
    assert report["loader"][0]["samples_per_s"] > 0 and report["step_samples_per_s"]["bf16"] > 0
    assert "loader / fastest step" in printed
    optimiser = tmp_path / "optimiser.json"
    assert "speed-up" in run_script("optimizer_step.py", "--sizes", "tiny", "--repeats", "1", "--out", str(optimiser)).stdout
    (row,) = json.loads(optimiser.read_text())["runs"]
    assert row["fused_seconds"] > 0 and row["foreach_seconds"] > 0 and row["parameters"] > 1e6
    timing = tmp_path / "list.json"
    run_script("list_time.py", "--repeats", "1", "--out", str(timing))
    medians = json.loads(timing.read_text())["median_seconds"]
    assert set(medians) == {"maekit list", "maekit list --json", "python -c 'import torch'"}


def test_pointcloud_ops_benchmark_compares_with_open3d_and_the_naive_chamfer(tmp_path):
    out = tmp_path / "points.json"
    printed = run_script("pointcloud_ops.py", "--batch", "2", "--points", "512", "--centres", "16",
                         "--chamfer-points", "256", "--repeats", "1", "--out", str(out)).stdout
    report = json.loads(out.read_text())
    assert report["fps"]["same_points_as_open3d_share"] == 1.0  # the same algorithm from the same start point
    assert report["fps"]["compiled_equals_torch_on_cpu"] and report["fps"]["compiled_1_thread_seconds"] > 0
    assert report["knn"]["identical"] and report["chamfer"]["same_value"]
    assert report["chamfer"]["maekit_seconds"] > 0 and "open3d/compiled" in printed


def test_attention_benchmark_compares_both_attentions(tmp_path):
    out = tmp_path / "attention.json"
    result = run_script("attention.py", "--batch", "1", "--repeats", "1", "--out", str(out))
    assert "speed-up" in result.stdout
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == 4
    for run in runs:
        assert set(run["seconds"]) == {"maekit (fp32 attention)", "timm (bf16 attention)"}
        # both are bf16 blocks: close to the float32 block, neither exact
        assert all(0 < error < 0.05 for error in run["mean_abs_error_vs_fp32"].values())


def test_test_time_benchmark_compares_batched_adaptation_with_the_plain_loop(tmp_path):
    out = tmp_path / "ttt.json"
    result = run_script("test_time.py", "--quick", "--out", str(out))
    assert "ratio plain loop / batched" in result.stdout
    report = json.loads(out.read_text())
    assert len(report["seconds_per_sample_step"]) == 3 and all(v > 0 for v in report["seconds_per_sample_step"].values())


def test_probe_fit_benchmark_times_both_thread_settings_with_the_same_accuracy(tmp_path):
    out = tmp_path / "probe.json"
    printed = run_script("probe_fit.py", "--train", "200", "--test", "100", "--repeats", "1", "--out", str(out)).stdout
    report = json.loads(out.read_text())
    assert set(report["median_seconds"]) == {"default BLAS threads", "one BLAS thread"}
    assert all(seconds > 0 for seconds in report["median_seconds"].values())
    # the thread count changes the speed, not the solution (summation order moves it by a sample or two)
    assert report["accuracy"]["default BLAS threads"] == pytest.approx(report["accuracy"]["one BLAS thread"], abs=0.03)
    assert "one BLAS thread is" in printed and "(200, 128) train" in report["features"]
