"""Run the benchmarks on every backend and print their ratios as tables.

Each backend runs in its own process (`KERAS_BACKEND` is read once, at
import), and each process measures keras-stn and its PyTorch reference side
by side, so every ratio compares two timings taken under the same load.

    python benchmarks/run.py                      # every goal, every backend
    python benchmarks/run.py --goals sampler --backends jax torch

Goals:
    sampler: forward + backward of the sampler at MNIST size, feature-map
        size and on volumes, against `torch.nn.functional.grid_sample`.
    scaling: the same over output sizes and channel counts.
    memory: peak memory of the sampler's forward + backward pass, against
        `grid_sample`'s, each measured in a fresh process.
    step: a training step of an ST-CNN against the same CNN without the
        transformer and against the ST-CNN written in pure PyTorch, on a
        small CNN and on the paper's SVHN CNN.
    second_order: a gradient-penalty step through `warp_affine` (a second
        derivative) against a first-order step, and against the same
        penalty step on the generic `keras.ops` sampler.
    inference: sampling through `predict_on_batch`, `predict` and a
        compiled model call, against `grid_sample` under `no_grad`, with
        Keras' own cost (a model that does next to nothing) apart; and
        `predict` of an ST-CNN against the same CNN without the sampler.
    warp: `warp` by a dense displacement field, forward and forward +
        backward (gradients for the images and the field), on a volume
        and on images, against `grid_sample` of the equivalent grid.
    antialiasing: the error of plain and antialiased sampling against a
        supersampled reference, on checkerboards and MNIST digits zoomed
        out 1x to 8x, and the time of a forward and backward pass of each.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from sampler_memory import MEMORY_SIZES
from sampler_speed import SCALING_SIZES
from sampler_speed import SIZES
from timing import add_repeats_option

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax", "torch")
GOALS = {
    "sampler": ["sampler_speed.py", "--sizes", *SIZES],
    "scaling": ["sampler_speed.py", "--sizes", *SCALING_SIZES],
    "memory": None,  # One process per size and sampler: see `memory_rows`.
    "step": ["training_step.py"],
    "second_order": ["second_derivatives.py"],
    "inference": ["inference.py"],
    "warp": ["warp_speed.py"],
    "antialiasing": ["antialiasing.py"],
}


# keras-stn and PyTorch take turns in one process. Once a call returns,
# PyTorch's OpenMP threads spin waiting for more work (libgomp's default),
# which on a small machine takes the cores from whatever runs next: on this
# repository's 2-core machine they doubled the time of the JAX kernel timed
# after PyTorch at MNIST size (4.6 ms against 2.3 ms alone), while PyTorch's
# own time moved by 5%. Threads that sleep when idle keep each timing to
# itself. A value already in the environment wins.
DEFAULT_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def run_on_backend(backend, command, repeats, environment=None):
    """Run a benchmark script on one backend; return its JSON lines.

    Args:
        backend: the value of `KERAS_BACKEND`.
        command: the script and its arguments.
        repeats: passed on as `--repeats`.
        environment: more environment variables for the script, or `None`.

    Returns:
        The parsed JSON lines the script printed.
    """
    result = subprocess.run(
        [sys.executable, *command, "--repeats", str(repeats)],
        cwd=HERE,
        env={
            **DEFAULT_ENVIRONMENT,
            **os.environ,
            **(environment or {}),
            "KERAS_BACKEND": backend,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        sys.exit(
            f"{command[0]} failed on the {backend} backend:\n{result.stderr}"
        )
    return [
        json.loads(line)
        for line in result.stdout.splitlines()
        if line.startswith("{")
    ]


def memory_rows(backends, repeats):
    """Measure peak memory, each size and sampler in a fresh process.

    Args:
        backends: the backends to measure keras-stn on.
        repeats: measured passes per process (the largest peak counts).

    Returns:
        Rows for `ratio_table`: keras-stn's peak over PyTorch's.
    """
    rows = []
    for size in MEMORY_SIZES:
        command = ["sampler_memory.py", "--size", size, "--sampler"]
        (reference,) = run_on_backend("torch", [*command, "torch"], repeats)
        for backend in backends:
            (row,) = run_on_backend(
                backend,
                [*command, "keras_stn"],
                repeats,
                # TensorFlow's allocator keeps statistics (which
                # `sampler_memory.tensorflow_peak_bytes` reads) only where
                # it is a BFC allocator: oneDNN's on CPUs with AVX-512, or
                # the one this variable selects.
                {"TF_CPU_ALLOCATOR_USE_BFC": "1"},
            )
            row["ratio"] = row["peak_mib"] / reference["peak_mib"]
            rows.append(row)
    return rows


def ratio_table(rows, backends):
    """Format rows as a Markdown table: one line per size, one column each.

    Args:
        rows: dicts with `size`, `backend` and `ratio`, and possibly
            `generic_ratio` (the generic path's, shown in parentheses where
            the backend has a separate fast path).
        backends: the column order.

    Returns:
        The table, as text.
    """
    sizes = list(dict.fromkeys(row["size"] for row in rows))
    cells = {(row["size"], row["backend"]): _ratio_cell(row) for row in rows}
    lines = [
        "| size | " + " | ".join(backends) + " |",
        "|---" * (len(backends) + 1) + "|",
    ]
    for size in sizes:
        cells_of_size = [cells.get((size, backend), "") for backend in backends]
        lines.append(f"| {size} | " + " | ".join(cells_of_size) + " |")
    return "\n".join(lines)


def _ratio_cell(row):
    """`1.25x`, or `1.25x (28.10x generic)` where the generic path differs."""
    cell = f"{row['ratio']:.2f}x"
    if "generic_ratio" in row:
        cell += f" ({row['generic_ratio']:.2f}x generic)"
    return cell


def table(rows, columns, order_by):
    """Format rows as a Markdown table, one line per row.

    Args:
        rows: dicts, as the benchmark scripts print them.
        columns: `(header, cell)` pairs, `cell` a function from a row to
            the text of its cell in that column.
        order_by: the key whose values order the rows, in the order they
            first appear (the rows of one value keep their order).

    Returns:
        The table, as text.
    """
    values = list(dict.fromkeys(row[order_by] for row in rows))
    lines = [
        "| " + " | ".join(header for header, _ in columns) + " |",
        "|---" * len(columns) + "|",
    ]
    for row in sorted(rows, key=lambda row: values.index(row[order_by])):
        lines.append("| " + " | ".join(cell(row) for _, cell in columns) + " |")
    return "\n".join(lines)


def milliseconds(key, digits=2):
    """A `table` cell: `row[key]`, in seconds, as milliseconds."""
    return lambda row: f"{1000 * row[key]:.{digits}f} ms"


def ratio(key):
    """A `table` cell: `row[key]` as a ratio, `1.25x`."""
    return lambda row: f"{row[key]:.2f}x"


def optional_ratio(key):
    """A `table` cell: `row[key]` as a ratio, or "-" where it is `None`."""
    return lambda row: "-" if row[key] is None else f"{row[key]:.2f}x"


def goal(key):
    """A `table` cell: `row["goal"]`, and whether `row[key]` meets it;
    "none" where the row has no goal."""
    return lambda row: (
        "none"
        if row["goal"] is None
        else f"<= {row['goal']:.2f} "
        + ("met" if row[key] <= row["goal"] else "missed")
    )


def field(key):
    """A `table` cell: `row[key]` as it is."""
    return lambda row: str(row[key])


def size_and_shape(row):
    """A `table` cell: the size's name and its shape, `mnist, 64x28x28x1`."""
    return f"{row['size']}, {'x'.join(map(str, row['shape']))}"


def step_table(rows):
    """Format the training-step rows as a Markdown table.

    One line per CNN and backend, the CNNs in the order they first appear.

    Args:
        rows: dicts of `training_step.measure`.

    Returns:
        The table, as text.
    """
    return table(
        rows,
        [
            ("CNN, batch", lambda row: f"{row['cnn_name']}, {row['batch']}"),
            ("backend", field("backend")),
            ("CNN", milliseconds("cnn", 1)),
            ("ST-CNN", milliseconds("st_cnn", 1)),
            ("pure PyTorch ST-CNN", milliseconds("torch_st_cnn", 1)),
            ("ST-CNN / CNN", ratio("st_cnn_over_cnn")),
            ("ST-CNN / PyTorch", ratio("st_cnn_over_torch")),
            ("CNN behind a 1x1 conv / CNN", ratio("pointwise_cnn_over_cnn")),
        ],
        order_by="cnn_name",
    )


def second_order_table(rows):
    """Format the second-derivative rows as a Markdown table.

    One line per size and backend, the sizes in the order they first
    appear.

    Args:
        rows: dicts of `second_derivatives.measure`.

    Returns:
        The table, as text.
    """
    return table(
        rows,
        [
            ("size", size_and_shape),
            ("backend", field("backend")),
            ("first-order step", milliseconds("first_order")),
            ("penalty step", milliseconds("penalty")),
            ("generic penalty step", milliseconds("penalty_generic")),
            ("penalty / first-order", ratio("penalty_over_first_order")),
            ("penalty / generic penalty", ratio("penalty_over_generic")),
        ],
        order_by="size",
    )


def inference_table(rows):
    """Format the inference rows as two Markdown tables.

    The sampling rows, one line per size, backend and call (the sizes in
    the order they first appear), then the ST-CNN rows, one line per
    backend.

    Args:
        rows: dicts of `inference.measure`.

    Returns:
        The tables, as text.
    """
    sampling = table(
        [row for row in rows if row["kind"] == "sampling"],
        [
            ("size", size_and_shape),
            ("backend", field("backend")),
            ("call", field("call")),
            ("PyTorch", milliseconds("torch", 3)),
            ("model", milliseconds("model", 3)),
            ("trivial model", milliseconds("trivial", 3)),
            ("model / PyTorch", ratio("raw_ratio")),
            ("ours: (model - trivial) / PyTorch", ratio("ours")),
            ("ours, fastest rounds", ratio("ours_best")),
            ("PyTorch's kernel in the layer (torch)", optional_ratio("floor")),
            ("goal (ours)", goal("ours")),
        ],
        order_by="size",
    )
    st_cnn = table(
        [row for row in rows if row["kind"] == "st_cnn"],
        [
            ("size", size_and_shape),
            ("backend", field("backend")),
            ("ST-CNN predict", milliseconds("st_cnn", 1)),
            ("identity-sampler CNN predict", milliseconds("identity_cnn", 1)),
            ("ST-CNN / identity", ratio("ratio")),
            ("goal", goal("ratio")),
        ],
        order_by="size",
    )
    return f"{sampling}\n\n{st_cnn}"


def warp_table(rows):
    """Format the dense-field rows as a Markdown table.

    One line per size, pass and backend, the sizes in the order they first
    appear.

    Args:
        rows: dicts of `warp_speed.measure`.

    Returns:
        The table, as text.
    """
    return table(
        rows,
        [
            ("size", size_and_shape),
            ("pass", field("pass")),
            ("backend", field("backend")),
            ("PyTorch", milliseconds("torch", 1)),
            ("keras-stn", milliseconds("keras_stn", 1)),
            ("generic", milliseconds("keras_stn_generic", 1)),
            ("keras-stn / PyTorch", ratio("ratio")),
            ("generic / PyTorch", ratio("generic_ratio")),
        ],
        order_by="size",
    )


def antialiasing_table(rows):
    """Format the antialiasing rows as a Markdown table.

    One line per kind of images, zoom-out factor and backend, the kinds in
    the order they first appear.

    Args:
        rows: dicts of `antialiasing.measure`.

    Returns:
        The table, as text.
    """
    return table(
        rows,
        [
            (
                "images",
                lambda row: (
                    f"{row['images']}, {row['shape'][0]}x"
                    f"{row['shape'][1]}x{row['shape'][2]}"
                ),
            ),
            ("zoom out", lambda row: f"{row['zoom']}x"),
            ("backend", field("backend")),
            ("RMSE plain", lambda row: f"{row['plain_rmse']:.4f}"),
            ("RMSE antialiased", lambda row: f"{row['antialiased_rmse']:.4f}"),
            ("antialiased / plain error", ratio("error_ratio")),
            ("plain pass", milliseconds("plain_time", 1)),
            ("antialiased pass", milliseconds("antialiased_time", 1)),
            ("antialiased / plain time", ratio("time_ratio")),
        ],
        order_by="images",
    )


# goal: (title, function formatting its rows); the others use `ratio_table`.
TABLES = {
    "step": ("median training-step times and ratios", step_table),
    "second_order": (
        "median step times, gradient penalty (second order) over first "
        "order and over the generic path",
        second_order_table,
    ),
    "inference": (
        "median inference times; ours = keras-stn's share, over PyTorch's "
        "`grid_sample` under `no_grad`",
        inference_table,
    ),
    "warp": (
        "median times of `warp` and PyTorch's `grid_sample` of the same points",
        warp_table,
    ),
    "antialiasing": (
        "RMSE against an 8x supersampled, box-filtered reference, and "
        "median forward + backward times",
        antialiasing_table,
    ),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--goals", nargs="+", choices=list(GOALS), default=list(GOALS)
    )
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS)
    )
    add_repeats_option(parser)
    args = parser.parse_args()
    for name in args.goals:
        if name == "memory":
            rows = memory_rows(args.backends, min(args.repeats, 3))
            print("\n## memory: keras-stn peak / PyTorch peak\n")
            print(ratio_table(rows, args.backends))
            continue
        rows = []
        for backend in args.backends:
            rows += run_on_backend(backend, GOALS[name], args.repeats)
        if name in TABLES:
            title, format_rows = TABLES[name]
            print(f"\n## {name}: {title}\n")
            print(format_rows(rows))
        else:
            print(f"\n## {name}: keras-stn time / PyTorch time (median)\n")
            print(ratio_table(rows, args.backends))


if __name__ == "__main__":
    main()
