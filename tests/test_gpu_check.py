"""The GPU check, `benchmarks/gpu_check.py`, as its CPU dry run.

The check runs on a GPU machine once in a while, by hand; here its dry run
(the same checks on the CPU at tiny sizes) runs on the backend under test,
so that the script is known to work before a GPU's time is spent on it.
"""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import gpu_check

BACKEND = keras.backend.backend()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The quick dry run on the backend under test: its output and files."""
    out = tmp_path_factory.mktemp("gpu_check_out")
    command = [sys.executable, gpu_check.__file__, "--dry-run", "--quick"]
    command += ["--backends", BACKEND, "--out", str(out)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False
    )
    return result, out


def table_rows(stdout):
    """The summary table, which must end the output: `{check: cell}`."""
    lines = stdout.strip().splitlines()
    title = f"keras-stn GPU check: {gpu_check.DRY_RUN_NOTE}"
    assert title in lines, stdout
    table = lines[lines.index(title) + 1 :]
    assert table[0] == "" and table[1] == f"| check | {BACKEND} |", table
    rows = {}
    for line in table[3:]:
        assert line.startswith("| ") and line.endswith(" |"), line
        check, cell = line[2:-2].split(" | ")
        rows[check] = cell
    return rows


def test_dry_run_passes_and_prints_the_table_last(dry_run):
    result, _ = dry_run
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table_rows(result.stdout)
    assert rows["status"] == "ok"
    assert rows["device"] in ("cpu", "cpu:0") or "CPU" in rows["device"]
    cases = 2 * len(gpu_check.QUICK_CASES)  # each with both implementations
    assert rows["numerics vs torch grid_sample"].startswith(
        f"pass {cases}/{cases} "
    )
    assert rows["ST-CNN training"].startswith("pass: loss ")
    speed = {k: v for k, v in rows.items() if k.startswith("time / torch")}
    assert len(speed) == 2, rows  # one size, forward and forward+backward
    for cell in speed.values():
        ratio, keras_stn, torch = re.match(
            r"(\d+\.\d\d)x \(([\d.e-]+) / ([\d.e-]+) ms; generic", cell
        ).groups()
        assert float(ratio) > 0 and float(keras_stn) > 0 and float(torch) > 0
    assert rows["peak memory / torch, fwd+bwd"] == "n/a: no GPU"
    assert re.match(r"ST-CNN/CNN \d+\.\d\dx \(", rows["train step"])


def test_dry_run_writes_its_results(dry_run):
    _, out = dry_run
    assert {path.name for path in out.iterdir()} == {
        "gpu_check.json",
        "gpu_check.log",
        "gpu_check.md",
    }
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["gpu"] is False
    results = summary["results"][BACKEND]
    assert results["exit"] == 0
    assert results["environment"]["backend"] == BACKEND
    numerics = results["numerics"]
    assert numerics["passed"] and numerics["skipped_cases"] == 0
    for case in numerics["cases"]:
        errors = case["max_abs_error"]
        assert np.isfinite(list(errors.values())).all(), case
    speed_rows = results["speed"]["rows"]
    assert [row["pass"] for row in speed_rows] == [
        "forward",
        "forward+backward",
    ]
    assert all(row["torch"] > 0 for row in speed_rows)
    assert "KERAS_BACKEND" in (out / "gpu_check.log").read_text()


def test_summary_table_reports_failures_and_missing_sections():
    results = {
        "environment": {"keras_device": "cuda:0", "error": "Keras on cpu"},
        "numerics": {"skipped": "time budget", "seconds": 0.0},
        "speed": {"rows": [], "skipped_sizes": ["mnist forward"]},
        "exit": "stopped",
    }
    table = gpu_check.summary_table({"jax": results}, gpu=True)
    assert table.splitlines()[-1] == (
        "| status | FAILED: environment error, memory not run, numerics "
        "skipped, training not run, speed partly skipped, train_step not "
        "run, exit "
        "stopped |"
    )
    assert "| numerics vs torch grid_sample | skipped (time budget) |" in table
    assert "| ST-CNN training | not run |" in table
