"""Check keras-stn on a GPU against PyTorch: numbers, training, speed, memory.

One command for a machine with an NVIDIA GPU, CUDA builds of PyTorch and JAX
and no Keras (the device machine of this workplace: an H200, no TensorFlow,
no network). Once, on a machine with network access, in the repository's
root:

    make gpu-wheels    # Keras and the dependencies that machine lacks, in .whl/

then there, in the repository's root (through the device tool: command
`bash benchmarks/gpu_check.sh`, carry `[".whl"]`):

    bash benchmarks/gpu_check.sh    # installs .whl/ into /tmp/site, runs this

For each backend (`--backends`, default torch and jax), in a process of its
own with `KERAS_BACKEND` set, it checks, with PyTorch on the same device as
the reference:

- numerics: `keras_stn.ops.grid_sample`, its default path and its generic
  `keras.ops` path, against `torch.nn.functional.grid_sample`: outputs and
  the gradients for the images and the grid, 2-D and 3-D, every mode and
  padding mode, both conventions of `align_corners`, with the tolerances of
  `tests/test_grid_sample.py`;
- training: a few steps of a small ST-CNN (`keras_stn.SpatialTransformer`)
  on one batch: the loss must fall and theta leave the identity;
- speed: `grid_sample` over PyTorch's time, forward and forward + backward,
  at 128x28x28x1, 32x64x64x32 and 8x224x224x3 (`sampler_speed.py`, with
  each call waited for: `torch.cuda.synchronize`, `block_until_ready`);
- memory: the peak of a forward + backward pass at 8x224x224x3 over
  PyTorch's (`torch.cuda.max_memory_allocated`; on JAX the device's
  `memory_stats()` peak, where it has one);
- train step: an ST-CNN's training step over the same CNN's alone and over
  the ST-CNN in pure PyTorch (`training_step.py`, its `small` CNN).

It prints one summary table last and writes the whole log
(`gpu_check.log`), the results (`gpu_check.json`) and the table
(`gpu_check.md`) under `$OUT` (default `./gpu_check_out`). A time budget
(`--budget`, default 420 s, shared between the backends) skips what would
not fit, and says so. The exit status is 1 where a check failed.

Without a GPU (or with `--dry-run`) the same checks run on the CPU at tiny
sizes, and the table says "no GPU: CPU dry run":

    python benchmarks/gpu_check.py --dry-run
"""

import argparse
import concurrent.futures
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve()
# The prefix of a worker's progress lines, which the parent also prints.
PROGRESS = "gpu_check:"
DRY_RUN_NOTE = "no GPU: CPU dry run"

# Spatial sizes of the numerical checks: (batch, *spatial, channels,
# *output_spatial), as in `sampler_speed.random_inputs`.
NUMERICS_SIZES = {2: (2, 9, 11, 3, 8, 10), 3: (2, 5, 6, 7, 2, 4, 5, 6)}
MODES = {2: ("bilinear", "nearest", "bicubic"), 3: ("bilinear", "nearest")}
PADDING_MODES = ("zeros", "border", "reflection")
IMPLEMENTATIONS = ("auto", "keras")
# `--quick`: every mode and padding mode once, both ranks and conventions.
QUICK_CASES = (
    (2, "bilinear", "zeros", False),
    (2, "bicubic", "reflection", True),
    (3, "nearest", "border", False),
)
# (atol, rtol) per compared array: those of `tests/test_grid_sample.py`.
TOLERANCES = {
    "output": (1e-5, 1e-5),
    "grad_images": (1e-4, 0.0),
    "grad_grid": (1e-4, 1e-4),
}
# The sampler's sizes, named as in `sampler_speed.SIZES` and
# `sampler_memory.MEMORY_SIZES`; tiny ones for the CPU dry run.
SPEED_SIZES = {
    "mnist": (128, 28, 28, 1, 28, 28),
    "feature_map": (32, 64, 64, 32, 64, 64),
    "large_image": (8, 224, 224, 3, 224, 224),
}
DRY_RUN_SPEED_SIZES = {
    "mnist": (8, 28, 28, 1, 28, 28),
    "feature_map": (2, 16, 16, 8, 16, 16),
    "large_image": (2, 32, 32, 3, 32, 32),
}
MEMORY_SIZE = "large_image"
# The ST-CNN trained a few steps: image side, batch, steps.
TRAINING = {"gpu": (28, 64, 20), "cpu": (28, 8, 6)}
# The train-step benchmark's CNN on the GPU, and a tiny one for the CPU
# dry run, as `training_step.Architecture` fields.
STEP_CNN = "small"
DRY_RUN_CNN = {"convolutions": ((8, 3, 2),), "units": (16,), "batch": 4}
# Time kept back from a worker's share of the budget: for its last section
# to end, and for the parent to write the results.
RESERVE_SECONDS = 20
KILL_GRACE_SECONDS = 30


def worker_sections():
    """The checks a worker runs, in order: name and function.

    Memory comes first among the heavy ones: JAX's allocator keeps its peak
    since the process started, so nothing larger may run before it.
    """
    return [
        ("environment", check_environment),
        ("memory", check_memory),
        ("numerics", check_numerics),
        ("training", check_training),
        ("speed", check_speed),
        ("train_step", check_train_step),
    ]


# ----------------------------------------------------------------------
# The worker: one backend, in a process of its own. Keras and the benchmark
# modules are imported here only: the parent runs without Keras' backend.


class Context:
    """What a worker's checks share: the device, the sizes, the deadline.

    Attributes:
        gpu: whether the checks run on a GPU (else a CPU dry run).
        quick: whether to run the short version (tests).
        repeats: timed rounds of each speed measurement.
        deadline: `time.time()` by which the worker must be done.
        torch_device: the torch device of PyTorch's reference tensors.
        jobs: threads of the numerical checks.
    """

    def __init__(self, gpu, quick, repeats, deadline, jobs):
        self.gpu = gpu
        self.jobs = jobs
        self.quick = quick
        self.repeats = repeats
        self.deadline = deadline
        self.torch_device = "cuda" if gpu else "cpu"

    def speed_sizes(self):
        """The sampler's sizes to time: all on a GPU, tiny ones on the CPU,
        one with `quick`."""
        sizes = SPEED_SIZES if self.gpu else DRY_RUN_SPEED_SIZES
        return dict(list(sizes.items())[:1]) if self.quick else sizes

    def time_left(self):
        """Seconds until the deadline, less the reserve."""
        return self.deadline - RESERVE_SECONDS - time.time()


def progress(message):
    """Print a progress line, which the parent shows as well as logs."""
    print(f"{PROGRESS} {message}", flush=True)


def tensor_device(tensor):
    """The device of a backend tensor, as `(name, kind)`, kind `"gpu"` or
    `"cpu"`."""
    if hasattr(tensor, "devices"):  # A JAX array.
        devices = sorted(tensor.devices(), key=str)
        kind = "gpu" if devices[0].platform == "gpu" else devices[0].platform
        return ", ".join(str(device) for device in devices), kind
    name = str(tensor.device)
    return name, "gpu" if ("cuda" in name or "GPU" in name) else "cpu"


def check_environment(context):
    """The versions, the devices, and whether Keras uses the expected one."""
    import keras
    import numpy as np
    import torch

    backend = keras.backend.backend()
    device, kind = tensor_device(keras.ops.convert_to_tensor(np.zeros(1)))
    result = {
        "backend": backend,
        "keras": keras.__version__,
        "keras_path": keras.__file__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "keras_device": device,
        "keras_device_kind": kind,
        "torch_device": context.torch_device,
        "cuda_device": (
            torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        ),
    }
    if backend == "jax":
        import jax

        result["jax"] = jax.__version__
        result["jax_devices"] = [str(device) for device in jax.devices()]
    expected = "gpu" if context.gpu else "cpu"
    result["passed"] = kind == expected
    if not result["passed"]:
        result["error"] = f"Keras computes on {device}, not on the {expected}"
    return result


def compare(actual, expected, atol, rtol):
    """How far `actual` is from `expected`, as `np.allclose` measures it.

    Returns:
        `(max_abs_error, worst)`: the largest absolute difference, and the
        largest difference over its allowance `atol + rtol * |expected|`
        (at most 1 where `np.allclose` holds; infinite where one is NaN
        and the other not).
    """
    import numpy as np

    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        return math.inf, math.inf
    nan_mismatch = np.isnan(actual) != np.isnan(expected)
    if nan_mismatch.any():
        return math.inf, math.inf
    difference = np.nan_to_num(np.abs(actual - expected), nan=0.0)
    allowance = atol + rtol * np.nan_to_num(np.abs(expected), nan=0.0)
    return float(difference.max()), float((difference / allowance).max())


def numerics_cases(quick):
    """The numerical checks: `(rank, mode, padding_mode, align_corners,
    implementation)`."""
    if quick:
        cases = QUICK_CASES
    else:
        cases = [
            (rank, mode, padding_mode, align_corners)
            for rank in (2, 3)
            for mode in MODES[rank]
            for padding_mode in PADDING_MODES
            for align_corners in (False, True)
        ]
    return [
        (*case, implementation)
        for case in cases
        for implementation in IMPLEMENTATIONS
    ]


def numerics_case(context, index, case):
    """One numerical check: keras-stn against PyTorch on one case.

    Args:
        context: the worker's `Context`.
        index: the case's number, the seed of its inputs.
        case: `(rank, mode, padding_mode, align_corners, implementation)`.

    Returns:
        A dict of the case, its largest absolute errors and its worst error
        over the tolerance per compared array, and whether it passed; or
        `None` where the time budget is spent.
    """
    import keras
    import numpy as np

    from sampler_speed import keras_stn_step
    from sampler_speed import random_inputs
    from sampler_speed import torch_step

    if context.time_left() < 0:
        return None
    rank, mode, padding_mode, align_corners, implementation = case
    options = {
        "mode": mode,
        "padding_mode": padding_mode,
        "align_corners": align_corners,
    }
    inputs = random_inputs(NUMERICS_SIZES[rank], seed=index)
    output, gradients = torch_step(
        *inputs, device=context.torch_device, **options
    )()
    expected = {
        "output": np.moveaxis(output.detach().cpu().numpy(), 1, -1),
        "grad_images": np.moveaxis(gradients[0].cpu().numpy(), 1, -1),
        "grad_grid": gradients[1].cpu().numpy(),
    }
    output, gradients = keras_stn_step(*inputs, implementation, **options)()
    actual = dict(
        zip(expected, [output, *gradients], strict=True),
    )
    errors = {
        name: compare(
            keras.ops.convert_to_numpy(actual[name]), expected[name], *tolerance
        )
        for name, tolerance in TOLERANCES.items()
    }
    return {
        "rank": rank,
        **options,
        "implementation": implementation,
        "max_abs_error": {name: error[0] for name, error in errors.items()},
        "over_tolerance": {name: error[1] for name, error in errors.items()},
        "passed": all(error[1] <= 1.0 for error in errors.values()),
    }


def check_numerics(context):
    """`grid_sample` against PyTorch's on the same device, every option.

    The cases run on `context.jobs` threads: on JAX each compiles its own
    computations, which takes most of the time, outside Python's lock.
    """
    cases = numerics_cases(context.quick)
    rows = [numerics_case(context, 0, cases[0])]  # Builds what is cached.
    with concurrent.futures.ThreadPoolExecutor(context.jobs) as pool:
        rows += pool.map(
            lambda item: numerics_case(context, *item),
            list(enumerate(cases))[1:],
        )
    done = [row for row in rows if row is not None]
    failed = [row for row in done if not row["passed"]]
    for row in failed:
        progress(f"numerics FAILED: {row}")
    worst = {
        name: max((row["over_tolerance"][name] for row in done), default=0.0)
        for name in TOLERANCES
    }
    return {
        "cases": done,
        "passed_count": len(done) - len(failed),
        "count": len(done),
        "skipped_cases": len(rows) - len(done),
        "worst_over_tolerance": worst,
        "passed": not failed and len(done) == len(rows),
    }


def check_training(context):
    """A few training steps of a small ST-CNN on one batch of random data.

    The loss must fall and theta leave the identity, where it starts.
    """
    import keras
    import numpy as np

    import keras_stn

    side, batch, steps = TRAINING["gpu" if context.gpu else "cpu"]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch, side, side, 1)).astype("float32")
    labels = rng.integers(0, 10, batch)
    transformer = keras_stn.SpatialTransformer(output_size=(side, side))
    model = keras.Sequential(
        [
            keras.Input((side, side, 1)),
            transformer,
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy"
    )
    start = time.perf_counter()
    losses = [float(model.train_on_batch(images, labels)) for _ in range(steps)]
    seconds = time.perf_counter() - start
    theta = keras.ops.convert_to_numpy(transformer.compute_theta(images))
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    moved = float(np.abs(theta - identity).max())
    finite = bool(np.isfinite(losses).all() and np.isfinite(theta).all())
    return {
        "shape": (batch, side, side, 1),
        "steps": steps,
        "losses": losses,
        "theta_moved": moved,
        "seconds_with_compilation": seconds,
        "passed": finite and losses[-1] < losses[0] and moved > 1e-5,
    }


def check_speed(context):
    """`grid_sample` over PyTorch's time, forward and forward + backward."""
    from sampler_speed import measure_size

    rows, skipped = [], []
    for name, size in context.speed_sizes().items():
        for backward in (False, True):
            label = f"{name} {'forward+backward' if backward else 'forward'}"
            if context.time_left() < 0:
                skipped.append(label)
                continue
            row = measure_size(
                name, size, context.repeats, backward, context.torch_device
            )
            row["pass"] = "forward+backward" if backward else "forward"
            rows.append(row)
            progress(
                f"speed {label}: {row['ratio']:.2f}x PyTorch's time "
                f"(generic {row['generic_ratio']:.2f}x)"
            )
    return {"rows": rows, "skipped_sizes": skipped}


def torch_peak_bytes(function):
    """The peak of PyTorch's CUDA allocator while `function` runs, above
    the bytes allocated before."""
    import torch

    from timing import wait

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    wait(function())
    return torch.cuda.max_memory_allocated() - before


def jax_peak_bytes(function):
    """The peak of JAX's device allocator during `function`'s first call.

    JAX keeps one peak since the process started, with no reset, so the
    first call (which compiles, then runs) is measured, above the bytes in
    use before; it is a measurement only where the peak rose in the call.

    Returns:
        `(bytes, note)`: `bytes` is `None` where the device keeps no
        statistics, or the peak did not rise; `note` says why.
    """
    import jax

    from timing import wait

    device = jax.devices()[0]
    stats = device.memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None, f"n/a: {device.platform} keeps no memory_stats"
    before, peak_before = stats["bytes_in_use"], stats["peak_bytes_in_use"]
    wait(function())
    peak = device.memory_stats()["peak_bytes_in_use"]
    if peak <= peak_before:
        return None, "n/a: the device's peak was reached before"
    return peak - before, None


def check_memory(context):
    """The peak memory of a forward + backward pass over PyTorch's."""
    import keras
    import torch

    from sampler_speed import keras_stn_step
    from sampler_speed import random_inputs
    from sampler_speed import torch_step
    from timing import wait

    size = (SPEED_SIZES if context.gpu else DRY_RUN_SPEED_SIZES)[MEMORY_SIZE]
    result = {"size": MEMORY_SIZE, "shape": size}
    if not torch.cuda.is_available() or not context.gpu:
        result["note"] = "n/a: no GPU"
        return result
    inputs = random_inputs(size)
    keras_stn = keras_stn_step(*inputs)
    reference = torch_step(*inputs, device=context.torch_device)
    wait(reference())
    result["torch_bytes"] = torch_peak_bytes(reference)
    backend = keras.backend.backend()
    if backend == "torch":
        wait(keras_stn())
        result["keras_stn_bytes"] = torch_peak_bytes(keras_stn)
    elif backend == "jax":
        result["keras_stn_bytes"], note = jax_peak_bytes(keras_stn)
        if note:
            result["note"] = note
    else:
        result["note"] = f"n/a: not measured on {backend}"
    if result.get("keras_stn_bytes") is not None:
        result["ratio"] = result["keras_stn_bytes"] / result["torch_bytes"]
    return result


def check_train_step(context):
    """An ST-CNN's training step over the CNN's, and over pure PyTorch's."""
    from training_step import Architecture
    from training_step import measure

    if context.gpu:
        return measure(STEP_CNN, context.repeats, context.torch_device)
    architecture = Architecture(**DRY_RUN_CNN)
    return measure("tiny", context.repeats, "cpu", architecture)


def run_worker(args):
    """Run every check on this process's backend; write the results.

    The results file is rewritten after each section, so that what was
    done survives a worker that the parent stops.
    """
    context = Context(
        args.gpu, args.quick, args.repeats, args.deadline, args.jobs
    )
    results = {}
    path = Path(args.result)
    for name, check in worker_sections():
        if context.time_left() < 0:
            results[name] = {"skipped": "time budget"}
            progress(f"{name}: skipped (time budget)")
            continue
        progress(f"{name}: running")
        start = time.perf_counter()
        try:
            results[name] = check(context)
        except Exception as error:  # Report it, and go on with the rest.
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["seconds"] = time.perf_counter() - start
        status = results[name].get("passed", "done")
        progress(f"{name}: {status} in {results[name]['seconds']:.1f} s")
        path.write_text(json.dumps(results, default=str))
    return 0


# ----------------------------------------------------------------------
# The parent: spawns one worker per backend, gathers and prints.


def cuda_available():
    """Whether PyTorch sees a CUDA GPU (without starting CUDA here)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def run_backend(backend, args, gpu, deadline, log):
    """Run one worker to its deadline; return its results.

    Args:
        backend: the value of `KERAS_BACKEND`.
        args: the parsed command line.
        gpu: whether the worker checks on the GPU.
        deadline: `time.time()` by which the worker must be done; it is
            stopped `KILL_GRACE_SECONDS` later.
        log: the open log file, which gets the worker's whole output.

    Returns:
        The worker's results (see `run_worker`), with `"exit"`: its exit
        status, or `"stopped"` where it outran its deadline.
    """
    environment = {**os.environ, "KERAS_BACKEND": backend}
    environment["PYTHONUNBUFFERED"] = "1"
    # PyTorch's idle OpenMP threads would spin and slow what runs next on
    # the CPU (`run.py` says more).
    environment.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # JAX would take 75% of the GPU's memory up front, from PyTorch too.
    environment["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if not gpu:
        environment["CUDA_VISIBLE_DEVICES"] = ""
        environment["JAX_PLATFORMS"] = "cpu"
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        command = [
            sys.executable,
            str(HERE),
            "--worker",
            "--result",
            str(result),
            "--deadline",
            str(deadline),
            "--repeats",
            str(args.repeats),
            "--jobs",
            str(args.jobs),
        ]
        command += ["--gpu"] if gpu else []
        command += ["--quick"] if args.quick else []
        log.write(f"\n===== KERAS_BACKEND={backend}: {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def copy_output():
            for line in process.stdout:
                log.write(line)
                if line.startswith(PROGRESS):
                    print(f"[{backend}] {line.rstrip()}", flush=True)

        reader = threading.Thread(target=copy_output)
        reader.start()
        try:
            status = process.wait(
                max(1.0, deadline + KILL_GRACE_SECONDS - time.time())
            )
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = "stopped"
        reader.join()
        log.flush()
        results = json.loads(result.read_text()) if result.exists() else {}
    results["exit"] = status
    return results


def ratio_cell(row, seconds=True):
    """A speed row as `1.23x (0.45 / 0.37 ms; generic 2.00x)`."""
    if not row:
        return "n/a"
    cell = f"{row['ratio']:.2f}x"
    if seconds:
        cell += (
            f" ({1000 * row['keras_stn']:.3g} / {1000 * row['torch']:.3g} ms;"
            f" generic {row['generic_ratio']:.2f}x)"
        )
    return cell


def section_cell(section, describe):
    """A section's cell: `describe(section)`, or why there is none."""
    if section is None:
        return "not run"
    if "error" in section:
        return f"ERROR {section['error'][:60]}"
    if "skipped" in section:
        return f"skipped ({section['skipped']})"
    return describe(section)


def describe_numerics(section):
    verdict = "pass" if section["passed"] else "FAIL"
    worst = max(section["worst_over_tolerance"].values())
    cell = f"{verdict} {section['passed_count']}/{section['count']}"
    cell += f" (worst {worst:.2g} of tolerance)"
    if section["skipped_cases"]:
        cell += f", {section['skipped_cases']} skipped (time budget)"
    return cell


def describe_training(section):
    verdict = "pass" if section["passed"] else "FAIL"
    losses = section["losses"]
    return (
        f"{verdict}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in "
        f"{section['steps']} steps, theta moved {section['theta_moved']:.2g}"
    )


def describe_memory(section):
    if "ratio" not in section:
        return section.get("note", "n/a")
    return (
        f"{section['ratio']:.2f}x ({section['keras_stn_bytes'] / 2**20:.1f}"
        f" / {section['torch_bytes'] / 2**20:.1f} MiB)"
    )


def describe_train_step(section):
    return (
        f"ST-CNN/CNN {section['st_cnn_over_cnn']:.2f}x "
        f"({1000 * section['st_cnn']:.3g} / {1000 * section['cnn']:.3g} ms); "
        f"/pure PyTorch {section['st_cnn_over_torch']:.2f}x"
    )


def shape_name(shape):
    """`(8, 28, 28, 1, 14, 14)` as `8x28x28x1 -> 14x14`."""
    rank = (len(shape) - 2) // 2
    sizes = "x".join(str(n) for n in shape[: rank + 2])
    return f"{sizes} -> {'x'.join(str(n) for n in shape[rank + 2 :])}"


def failures(results):
    """What went wrong in one backend's checks, as short phrases.

    Returns:
        For each check that did not pass: `"<check> failed"`, `"<check>
        error"` (it raised), `"<check> skipped"` (the time budget) or
        `"<check> not run"` (the worker stopped first), `"<check> partly
        skipped"`; and `"exit <status>"`
        where the worker did not exit with 0. Empty where all is well.
    """
    found = []
    for name, _ in worker_sections():
        section = results.get(name)
        if section is None:
            found.append(f"{name} not run")
        elif "error" in section:
            found.append(f"{name} error")
        elif "skipped" in section:
            found.append(f"{name} skipped")
        elif section.get("passed") is False:
            found.append(f"{name} failed")
        elif section.get("skipped_sizes"):
            found.append(f"{name} partly skipped")
    if results.get("exit") != 0:
        found.append(f"exit {results.get('exit')}")
    return found


def summary_table(all_results, gpu):
    """The summary as Markdown: a title line, then one column per backend."""
    backends = list(all_results)
    rows = []

    def add(label, cells):
        rows.append(f"| {label} | {' | '.join(cells)} |")

    def cells_of(name, describe):
        return [
            section_cell(all_results[b].get(name), describe) for b in backends
        ]

    add("device", cells_of("environment", lambda s: s["keras_device"]))
    add(
        "versions",
        cells_of(
            "environment",
            lambda s: (
                f"keras {s['keras']}, torch {s['torch']}"
                + (f", jax {s['jax']}" if "jax" in s else "")
            ),
        ),
    )
    add(
        "numerics vs torch grid_sample", cells_of("numerics", describe_numerics)
    )
    add("ST-CNN training", cells_of("training", describe_training))
    speed_rows = {}
    for backend in backends:
        section = all_results[backend].get("speed") or {}
        for row in section.get("rows", []):
            speed_rows.setdefault((row["size"], row["pass"]), {})[backend] = row
    for (_, pass_name), by_backend in speed_rows.items():
        shape = shape_name(next(iter(by_backend.values()))["shape"])
        add(
            f"time / torch, {pass_name}, {shape}",
            [ratio_cell(by_backend.get(b)) for b in backends],
        )
    add("peak memory / torch, fwd+bwd", cells_of("memory", describe_memory))
    add("train step", cells_of("train_step", describe_train_step))
    add(
        "status",
        [
            "ok"
            if not failures(all_results[b])
            else "FAILED: " + ", ".join(failures(all_results[b]))
            for b in backends
        ],
    )
    if gpu:
        names = {
            all_results[b].get("environment", {}).get("cuda_device")
            for b in backends
        }
        title = "keras-stn GPU check on " + ", ".join(map(str, names))
    else:
        title = f"keras-stn GPU check: {DRY_RUN_NOTE}"
    header = f"| check | {' | '.join(backends)} |"
    separator = "|---" * (len(backends) + 1) + "|"
    return "\n".join([title, "", header, separator, *rows])


def main(argv=None):
    """The command line; see the module's docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["torch", "jax"],
        choices=["torch", "jax", "tensorflow"],
        help="backends to check, each in its own process (tensorflow: "
        "CPU dry runs only; default: %(default)s)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run on the CPU at tiny sizes even where a GPU is found "
        "(the default where none is)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a subset of the numerical checks, one size timed, 2 timed "
        "rounds (tests)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=420.0,
        help="seconds for every backend together (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds of each speed measurement (default: 10 on a "
        "GPU, 3 on the CPU, 2 with --quick)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="threads of the numerical checks (default: %(default)s)",
    )
    parser.add_argument(
        "--out", default=None, help="default: $OUT, else ./gpu_check_out"
    )
    # The worker's own arguments, set by the parent.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gpu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)

    start = time.time()
    gpu = not args.dry_run and cuda_available()
    if args.repeats is None:
        args.repeats = 2 if args.quick else (10 if gpu else 3)
    out = Path(args.out or os.environ.get("OUT") or "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{PROGRESS} {'GPU found' if gpu else DRY_RUN_NOTE}; backends "
        f"{' '.join(args.backends)}; budget {args.budget:.0f} s; "
        f"log {out / 'gpu_check.log'}",
        flush=True,
    )
    all_results = {}
    with open(out / "gpu_check.log", "w") as log:
        for index, backend in enumerate(args.backends):
            # An equal share of what is left for each backend still to run.
            remaining = start + args.budget - time.time()
            share = remaining / (len(args.backends) - index)
            all_results[backend] = run_backend(
                backend, args, gpu, time.time() + share, log
            )
    table = summary_table(all_results, gpu)
    summary = {
        "gpu": gpu,
        "seconds": time.time() - start,
        "arguments": vars(args),
        "results": all_results,
    }
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
    (out / "gpu_check.md").write_text(table + "\n")
    print(f"{PROGRESS} results in {out}/gpu_check.json, log in gpu_check.log")
    print(table, flush=True)
    return 1 if any(failures(r) for r in all_results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
