"""Measure the peak memory of one sampler forward and backward pass.

Run once per measurement, in a fresh process: the process's resident memory
is polled every 0.2 ms while the pass runs (after one untimed pass that
compiles and warms the allocator), and the peak above the memory held just
before the pass is printed as a JSON line, in MiB. keras-stn on TensorFlow
is measured by TensorFlow's allocator statistics instead, since that
allocator reuses the warm-up pass's buffers (`tensorflow_peak_bytes`).
`--sampler keras_stn` measures keras-stn's `grid_sample` on the current
backend, compiled as for `sampler_speed.py`; `--sampler torch` measures
`torch.nn.functional.grid_sample`.

    KERAS_BACKEND=jax python benchmarks/sampler_memory.py \
        --size large_image --sampler keras_stn
    TF_CPU_ALLOCATOR_USE_BFC=1 KERAS_BACKEND=tensorflow \
        python benchmarks/sampler_memory.py \
        --size large_image --sampler keras_stn

`benchmarks/run.py --goals memory` runs every combination and prints the
ratios.
"""

import argparse
import json
import os
import threading
import time

from sampler_speed import keras_stn_step
from sampler_speed import random_inputs
from sampler_speed import torch_step
from timing import BACKEND
from timing import add_repeats_option
from timing import wait

# name: (batch, *spatial, channels, *output_spatial)
MEMORY_SIZES = {
    "large_image": (8, 224, 224, 3, 224, 224),
    "feature_map": (32, 64, 64, 32, 64, 64),
}
PAGE = os.sysconf("SC_PAGE_SIZE")
POLL_SECONDS = 0.0002


def resident_bytes():
    """The process's resident memory, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def peak_bytes(function):
    """The peak resident memory while `function` runs, above the start.

    Args:
        function: called once; its result is waited for.

    Returns:
        The peak, in bytes, minus the resident memory before the call.
    """
    start = resident_bytes()
    peak = start
    running = True

    def poll():
        nonlocal peak
        while running:
            peak = max(peak, resident_bytes())
            time.sleep(POLL_SECONDS)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        wait(function())
    finally:
        running = False
        poller.join()
    return max(peak, resident_bytes()) - start


def tensorflow_peak_bytes(function):
    """The peak of TensorFlow's CPU allocator while `function` runs.

    That allocator keeps the buffers of earlier passes and reuses them, so
    the process's resident memory does not grow in a pass: it reads almost
    nothing. Its own statistics count the bytes the pass holds at its peak,
    above what was held before. They exist only where the allocator is a
    BFC allocator: oneDNN's, on CPUs with AVX-512, or on any CPU with
    `TF_CPU_ALLOCATOR_USE_BFC=1`, which `benchmarks/run.py` sets.

    Args:
        function: called once.

    Returns:
        The peak, in bytes, minus the allocator's bytes in use before.
    """
    import tensorflow as tf

    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.config.experimental.reset_memory_stats("CPU:0")
    function()
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] - before


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=list(MEMORY_SIZES), required=True)
    parser.add_argument(
        "--sampler", choices=("keras_stn", "torch"), required=True
    )
    add_repeats_option(
        parser, default=1, help="measured passes; the largest peak is printed"
    )
    args = parser.parse_args()
    inputs = random_inputs(MEMORY_SIZES[args.size])
    make_step = keras_stn_step if args.sampler == "keras_stn" else torch_step
    step = make_step(*inputs)
    wait(step())  # Compile, and let the allocator settle.
    measure = peak_bytes
    if args.sampler == "keras_stn" and BACKEND == "tensorflow":
        measure = tensorflow_peak_bytes
    peak = max(measure(step) for _ in range(args.repeats))
    print(
        json.dumps(
            {
                "size": args.size,
                "sampler": args.sampler,
                "backend": BACKEND if args.sampler == "keras_stn" else "torch",
                "peak_mib": peak / 2**20,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
