"""The results tables, `examples/summarize_results.py`, on results files
written here."""

import json

import summarize_results


def write(folder, name, results):
    """Write `results` as `folder/name/results.json`."""
    (folder / name).mkdir(parents=True)
    (folder / name / "results.json").write_text(json.dumps(results))


def mnist_result(distortion, model, transform, error, seconds=600.0):
    return {
        "distortion": distortion,
        "model": model,
        "transform": transform,
        "error_percent": error,
        "seconds": seconds,
        "backend": "torch",
    }


def test_tables(tmp_path, capsys):
    write(tmp_path / "a", "rts_cnn", mnist_result("rts", "cnn", None, 2.5))
    write(
        tmp_path / "a",
        "rts_st",
        mnist_result("rts", "st-cnn", "tps", 1.25, seconds=90),
    )
    fresh = mnist_result("cluttered", "st-cnn", "tps", 3.0)
    write(tmp_path / "b", "tc_st", {**fresh, "protocol": "fresh", "epochs": 90})
    write(
        tmp_path / "b",
        "svhn",
        {
            "model": "multi-st-cnn",
            "data": "synthetic",
            "parameters": 1234567,
            "sequence_accuracy": 0.9,
            "sequence_error_percent": 10.0,
            "seconds": 120,
            "backend": "jax",
        },
    )
    summarize_results.main([str(tmp_path / "a"), str(tmp_path / "b")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | R | RTS | P | E | TC |"
    # Plain nets first; our error in bold, the paper's in brackets.
    assert lines[2] == "| CNN |  | **2.50** (0.8), 10 min torch |  |  |  |"
    assert lines[3] == (
        "| ST-CNN tps |  | **1.25** (0.5), 2 min torch |  |  | "
        "**3.00**, 10 min torch, fresh, 90 epochs |"
    )
    assert lines[-1] == (
        "| MULTI-ST-CNN | synthetic | 1,234,567 | **10.00** (3.6), 2 min jax |"
    )
