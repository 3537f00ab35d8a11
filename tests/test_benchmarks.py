"""The benchmark scripts keep working (figures are printed by them, never asserted on speed)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mae_step_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "step.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mae_step.py"), "--sizes", "tiny",
                             "--precisions", "fp32", "--batch", "2", "--repeats", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ratio maekit/transformers" in result.stdout
    report = json.loads(out.read_text())
    assert {r["contender"] for r in report["runs"]} == {"maekit", "transformers"}
    ours, theirs = report["runs"]
    # same model, same FLOPs (the counter sees the same matmuls; masked patches are not embedded by us)
    assert abs(ours["flops_per_step"] - theirs["flops_per_step"]) / theirs["flops_per_step"] < 0.01
    assert report["matmul_peak_flops"]["fp32"] > 0 and 0 < ours["mfu"] < 1.5
    assert report["machine"]["cores"] >= 1
