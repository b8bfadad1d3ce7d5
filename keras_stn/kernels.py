"""Build keras-stn's C++ sampling kernels ahead of time.

The kernels are compiled on first use
(`keras_stn.ops.sampling.cpp_kernel.build`), which makes a model's first
training step wait. Run

    python -m keras_stn.kernels build

once where the package is installed (a Docker image, a cluster's shared
cache) to build the kernel of every installed backend in advance; it prints
where each library is. `KERAS_STN_KERNEL_CACHE` (default
`$KERAS_HOME/keras_stn/kernels`) chooses the cache, which later processes
read.
"""

import argparse
import importlib
import importlib.util
import pathlib
import sys
import time

# The backends' packages, and the modules that build their kernels.
BACKEND_MODULES = {
    "tensorflow": "keras_stn.ops.sampling.cpp_kernel.tensorflow_ops",
    "jax": "keras_stn.ops.sampling.cpp_kernel.jax_ffi",
    "torch": "keras_stn.ops.sampling.cpp_kernel.torch_ctypes",
}


def installed_backends() -> list[str]:
    """The backends among TensorFlow, JAX and torch that are installed."""
    return [
        name
        for name in BACKEND_MODULES
        if importlib.util.find_spec(name) is not None
    ]


def build(backends: list[str] | None = None) -> dict[str, pathlib.Path | None]:
    """Build the kernels of installed backends (or find them built).

    Args:
        backends: backend names among `"tensorflow"`, `"jax"` and
            `"torch"`; `None` for every one that is installed.

    Returns:
        For each backend, the path of its kernel library, or `None` where it
        could not be built (after a warning).

    Example:

    >>> paths = build(["torch"])
    >>> paths["torch"] is None or paths["torch"].exists()
    True
    """
    backends = installed_backends() if backends is None else list(backends)
    unknown = sorted(set(backends) - set(BACKEND_MODULES))
    if unknown:
        raise ValueError(
            "Invalid value for argument `backends`. Expected names among "
            f"{tuple(BACKEND_MODULES)}. Received backends={backends!r}"
        )
    return {
        name: importlib.import_module(BACKEND_MODULES[name]).build_kernel()
        for name in backends
    }


def main(argv: list[str] | None = None) -> int:
    """The command line: `python -m keras_stn.kernels build [backend ...]`.

    Args:
        argv: the arguments, `sys.argv[1:]` by default.

    Returns:
        The exit status: 0 if every kernel was built or found, else 1.
    """
    parser = argparse.ArgumentParser(
        prog="python -m keras_stn.kernels",
        description="Build keras-stn's C++ sampling kernels ahead of time.",
    )
    parser.add_argument("command", choices=["build"])
    parser.add_argument(
        "backends",
        nargs="*",
        default=[],
        metavar="backend",
        help="tensorflow, jax or torch (default: every installed one)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.backends) - set(BACKEND_MODULES))
    if unknown:
        parser.error(
            f"unknown backend {unknown[0]!r}: tensorflow, jax or torch"
        )
    failed = False
    for name in args.backends or installed_backends():
        if name not in installed_backends():
            print(f"{name}: not installed (pip install {name})")
            failed = True
            continue
        start = time.perf_counter()
        path = build([name])[name]
        seconds = time.perf_counter() - start
        if path is None:
            print(f"{name}: not built (see the warning above)")
        else:
            print(f"{name}: {path} ({seconds:.1f} s)")
        failed |= path is None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
