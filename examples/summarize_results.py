"""Print the experiments' result tables from the experiments' `results.json`.

Usage:

    python examples/summarize_results.py outputs/distorted_mnist_torch \\
        outputs/street_numbers

Every `results.json` under the given folders goes into a Markdown table:
distorted-MNIST runs (from `distorted_mnist.py`) as test error per model and
distortion, beside the paper's figure where it has one; street-number runs
(from `street_numbers.py`) as sequence error per model. Each cell also gives
the run's wall time and backend, and for distorted-MNIST runs with fresh
distortions each epoch, the protocol and epochs.
"""

import argparse
import json
from pathlib import Path

from distortions import DISTORTIONS

# Jaderberg et al. (2015), Table 1 (left): test error (%) on distorted
# MNIST, R, RTS, P and E. The paper reports translated cluttered MNIST
# elsewhere.
_PAPER_TABLE_1 = {
    ("fcn", None): (2.1, 5.2, 3.1, 3.2),
    ("cnn", None): (1.2, 0.8, 1.5, 1.4),
    ("st-fcn", "affine"): (1.2, 0.8, 1.5, 2.7),
    ("st-fcn", "projective"): (1.3, 0.9, 1.4, 2.6),
    ("st-fcn", "tps"): (1.1, 0.8, 1.4, 2.4),
    ("st-cnn", "affine"): (0.7, 0.5, 0.8, 1.2),
    ("st-cnn", "projective"): (0.8, 0.6, 0.8, 1.3),
    ("st-cnn", "tps"): (0.7, 0.5, 0.8, 1.1),
}
PAPER_MNIST = {
    key: dict(
        zip(("rotated", "rts", "projective", "elastic"), errors, strict=True)
    )
    for key, errors in _PAPER_TABLE_1.items()
}
# Jaderberg et al. (2015), Table 2: sequence error (%) on SVHN, 64x64 crops.
PAPER_SVHN = {"cnn": 4.0, "st-cnn": 3.7, "multi-st-cnn": 3.6}
ABBREVIATIONS = {
    "rotated": "R",
    "rts": "RTS",
    "projective": "P",
    "elastic": "E",
    "cluttered": "TC",
}


def collect(folders: list[Path]) -> list[dict]:
    """Read every `results.json` under `folders`.

    Args:
        folders: folders searched recursively.

    Returns:
        The results, sorted by their files' paths.
    """
    paths = sorted(p for f in folders for p in Path(f).rglob("results.json"))
    return [json.loads(path.read_text()) for path in paths]


def _cell(error: float, result: dict, paper: float | None) -> str:
    """One table cell: our error, the paper's, and the run's wall time.

    Distorted-MNIST runs that distorted the training digits anew each epoch
    (`--protocol fresh`) say so, with their epochs.
    """
    paper_text = f" ({paper})" if paper is not None else ""
    minutes = result["seconds"] / 60
    cell = f"**{error:.2f}**{paper_text}, {minutes:.0f} min {result['backend']}"
    if result.get("protocol") == "fresh":
        cell += f", fresh, {result['epochs']} epochs"
    return cell


def mnist_table(results: list[dict]) -> str:
    """The distorted-MNIST table: a row per model, a column per distortion.

    Args:
        results: `results.json` contents of `distorted_mnist.py` runs.

    Returns:
        A Markdown table; cells are "**ours** (paper), wall time backend".
    """
    runs = {}
    for result in results:
        key = (result["model"], result["transform"])
        runs.setdefault(key, {})[result["distortion"]] = result
    header = "| model | " + " | ".join(
        f"{ABBREVIATIONS[d]}" for d in DISTORTIONS
    )
    lines = [header + " |", "|---" * (len(DISTORTIONS) + 1) + "|"]
    for key in sorted(runs, key=lambda k: (k[0].startswith("st-"), k)):
        model, transform = key
        name = model.upper() + (f" {transform}" if transform else "")
        cells = []
        for distortion in DISTORTIONS:
            result = runs[key].get(distortion)
            if result is None:
                cells.append("")
                continue
            paper = PAPER_MNIST.get(key, {}).get(distortion)
            cells.append(_cell(result["error_percent"], result, paper))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svhn_table(results: list[dict]) -> str:
    """The street-number table: a row per model.

    Args:
        results: `results.json` contents of `street_numbers.py` runs.

    Returns:
        A Markdown table of sequence error (%), ours and the paper's.
    """
    lines = [
        "| model | data | parameters | sequence error % (paper) |",
        "|---|---|---|---|",
    ]
    for result in results:
        cell = _cell(
            result["sequence_error_percent"],
            result,
            PAPER_SVHN.get(result["model"]),
        )
        lines.append(
            f"| {result['model'].upper()} | {result['data']} | "
            f"{result['parameters']:,} | {cell} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the tables of the results under the folders on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+")
    results = collect(parser.parse_args(argv).folders)
    mnist = [r for r in results if "distortion" in r]
    svhn = [r for r in results if "sequence_accuracy" in r]
    if mnist:
        print(mnist_table(mnist), end="\n\n")
    if svhn:
        print(svhn_table(svhn))


if __name__ == "__main__":
    main()
