"""keras-stn's C++ kernel, compiled on first use and cached on disk.

The kernel of `bilinear_sampling.h` samples bilinearly (trilinearly for
volumes) with `"zeros"` or `"border"` padding; the sources beside it bind it
to JAX (`jax_bilinear_sampling.cc`, see `jax_ffi`), to TensorFlow
(`tf_bilinear_sampling.cc`, see `tensorflow_ops`) and, as C functions, to
torch (`c_bilinear_sampling.cc`, see `torch_ctypes`).
The sources are compiled with the machine's C++ compiler (`$CXX`, else
`c++`) for the processor it runs on, into a shared library under
`$KERAS_STN_KERNEL_CACHE` (default `~/.keras/keras_stn/kernels`).
The library's name is a hash of everything that went into it (the sources,
the compiler and its version, the flags, the processor's features), so a
library is built once per machine and reused by later processes. Where no
compiler is found or compilation fails, `compiled_library` warns once and
returns `None`, and the caller takes its generic path.
"""

import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings

import keras

from keras_stn.ops.dtypes import dtype_name
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.typing import Tensor

# The kernel's C++ sources, beside this module.
KERNELS_DIR = pathlib.Path(__file__).parent
SOURCE_SUFFIXES = (".h", ".cc")
FLAGS = (
    "-O3",
    "-march=native",
    # The arithmetic as written: no fused multiply-adds, which would make
    # the vectorized and the scalar paths round differently.
    "-ffp-contract=off",
    "-std=c++17",
    "-shared",
    "-fPIC",
)
KERNEL_DTYPES = ("float32", "float64")
# The most channels of float32 images (2-D) that the kernel samples in
# vector blocks of points, where the compiler targets AVX2: the C++
# `kMaxBlockChannels` of `bilinear_sampling.h`.
BLOCK_MAX_CHANNELS = 7
# How long each kernel takes to build, measured on 2 cores
# (docs/getting-started.md, "First use"): TensorFlow's headers make its
# kernel the slowest.
BUILD_SECONDS = {
    "tf_bilinear_sampling.cc": "15-40",
    "jax_bilinear_sampling.cc": "10-30",
    "c_bilinear_sampling.cc": "10-25",
}
# The kernel's padding modes, and their codes in its `padding` attribute.
KERNEL_PADDING_MODES = {"zeros": 0, "border": 1}


def kernel_convention(options: SamplingOptions) -> bool | None:
    """The kernel's convention of points: `None` for points in pixels, else
    the `align_corners` of normalized ones.

    Args:
        options: the sampling's options.

    Returns:
        `None`, or `options.align_corners`.
    """
    return options.align_corners if options.normalized else None


def stacked(points: Tensor | list[Tensor]) -> Tensor:
    """Points of one tensor per axis stacked along a last axis, as JAX's
    and torch's bindings take them (a tensor is returned as it is).

    Args:
        points: one tensor of shape `(batch, *output_shape)` per axis, or
            one tensor of shape `(batch, *output_shape, rank)`.

    Returns:
        Tensor of shape `(batch, *output_shape, rank)`.
    """
    if isinstance(points, (list, tuple)):
        return keras.ops.stack(points, axis=-1)
    return points


def coordinates_code(align_corners: bool | None) -> int:
    """The code of the kernel's `coordinates` attribute.

    Args:
        align_corners: `None` for points in pixels; else the convention of
            normalized points, as in `grid_sample`.

    Returns:
        0 (pixels), 1 (normalized) or 2 (normalized, `align_corners`).
    """
    return 0 if align_corners is None else 1 + bool(align_corners)


def kernel_samples(
    images: Tensor, points: list[Tensor], mode: str, padding_mode: str
) -> bool:
    """Whether the sampling kernel computes this sampling.

    Args:
        images: the channels-last batch to sample.
        points: the coordinates of its sampling points, one tensor per
            axis or one with an axis of coordinates.
        mode: the sampling mode.
        padding_mode: the padding mode.

    Returns:
        `True` for bilinear sampling with `"zeros"` or `"border"` padding of
        float32 or float64 images at points of the same dtype.

    Example:

    >>> import numpy as np
    >>> images = keras.ops.zeros((1, 4, 4, 1))
    >>> points = [keras.ops.zeros((1, 2, 2))] * 2
    >>> kernel_samples(images, points, "bilinear", "zeros")
    True
    >>> kernel_samples(images, points, "bicubic", "zeros")
    False
    """
    dtype = dtype_name(images.dtype)
    return (
        mode == "bilinear"
        and padding_mode in KERNEL_PADDING_MODES
        and dtype in KERNEL_DTYPES
        and all(dtype_name(point.dtype) == dtype for point in points)
    )


def samples_in_blocks(images: Tensor) -> bool:
    """Whether the kernel samples these images in vector blocks of points.

    Its blocks take float32 images (2-D) of 1 to `BLOCK_MAX_CHANNELS`
    channels, where the compiler targets AVX2 (`vector_lanes.h`); its
    scalar path takes the others, a point at a time.

    Args:
        images: the channels-last batch to sample.

    Returns:
        Whether the kernel's blocks sample them.
    """
    return (
        len(images.shape) == 4
        and 1 <= images.shape[-1] <= BLOCK_MAX_CHANNELS
        and dtype_name(images.dtype) == "float32"
        and targets_avx2()
    )


def targets_avx2() -> bool:
    """Whether the kernels built here target AVX2 (`native_macros`)."""
    return "__AVX2__" in native_macros()


@functools.cache
def compiled_library(
    source: str,
    include_dirs: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> pathlib.Path | None:
    """Compile a kernel source (beside this module) into a library.

    Args:
        source: the file name of the source, beside this module.
        include_dirs: directories of headers it includes besides its own
            (a framework's), passed as system include directories.
        flags: more compiler and linker flags (a framework's macros and
            libraries), passed after the source.

    Returns:
        The path of the shared library, or `None` (after a warning) where
        it could not be built.

    Example:

    >>> import ctypes
    >>> import jax
    >>> path = compiled_library(
    ...     "jax_bilinear_sampling.cc", (jax.ffi.include_dir(),))
    >>> path is None or hasattr(ctypes.CDLL(path), "KerasStnBilinearSample")
    True
    """
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        return _unavailable(source, f"no C++ compiler `{_compiler_name()}`")
    command = [
        compiler,
        *FLAGS,
        *(f"-isystem{directory}" for directory in include_dirs),
        str(KERNELS_DIR / source),
        *flags,
    ]
    path = _cache_dir() / f"{pathlib.Path(source).stem}-{_key(command)}.so"
    if path.exists():
        return path
    _announce(source, path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Built beside its final name and renamed, so that a process never
        # loads a library that another one is still writing.
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            built = pathlib.Path(scratch) / path.name
            result = subprocess.run(
                [*command, "-o", str(built)], capture_output=True, text=True
            )
            if result.returncode != 0:
                return _unavailable(source, result.stderr.strip()[-2000:])
            os.replace(built, path)
    except OSError as error:
        return _unavailable(source, f"cache `{path.parent}`: {error}")
    return path


@functools.cache
def native_macros() -> frozenset[str]:
    """The macros that the compiler defines for this processor.

    What `-march=native` enables, as the kernels are built: `__AVX2__`,
    `__AVX512F__` and so on. Empty where there is no compiler.

    Returns:
        The names of the macros.

    Example:

    >>> macros = native_macros()
    >>> "__cplusplus" in macros or not macros  # empty without a compiler
    True
    """
    compiler = shutil.which(_compiler_name())
    if compiler is None:
        return frozenset()
    result = subprocess.run(
        [compiler, "-march=native", "-dM", "-E", "-x", "c++", "-"],
        input="",
        capture_output=True,
        text=True,
    )
    return frozenset(
        line.split()[1]
        for line in result.stdout.splitlines()
        if line.startswith("#define ")
    )


def _announce(source, cache_dir):
    """Say, before a build starts, what it is and how to avoid it."""
    seconds = BUILD_SECONDS.get(source, "10-40")
    print(
        f"keras-stn: compiling its C++ sampling kernel `{source}` for this "
        f"machine (once, about {seconds} s; the first training step waits "
        f"for it). Later runs reuse it from {cache_dir}. To build every "
        "kernel ahead of time (Docker images, clusters): "
        "python -m keras_stn.kernels build",
        file=sys.stderr,
        flush=True,
    )


def _compiler_name():
    return os.environ.get("CXX", "c++")


def _cache_dir():
    if "KERAS_STN_KERNEL_CACHE" in os.environ:
        return pathlib.Path(os.environ["KERAS_STN_KERNEL_CACHE"])
    keras_home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
    return pathlib.Path(keras_home) / "keras_stn" / "kernels"


def _key(command):
    """A hash of what a library built by `command` depends on."""
    digest = hashlib.sha256()
    digest.update("\0".join(command).encode())
    for path in sorted(KERNELS_DIR.iterdir()):
        if path.suffix in SOURCE_SUFFIXES:
            digest.update(path.read_bytes())
    version = subprocess.run(
        [command[0], "--version"], capture_output=True, text=True
    ).stdout
    digest.update(version.encode())
    digest.update(_processor().encode())
    return digest.hexdigest()[:16]


def _processor():
    """What `-march=native` targets: the processor's model and features."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")
    found = {}
    for line in lines:
        name = line.split(":")[0].strip()
        if name in wanted:
            found.setdefault(name, line)
    return platform.machine() + "".join(found.values())


def _unavailable(source, reason):
    warnings.warn(
        f"keras-stn could not build its C++ kernel `{source}`, so the "
        "sampler takes its `keras.ops` path, which gives the same numbers "
        f"more slowly. Set `CXX` to a C++17 compiler to build it. {reason}",
        stacklevel=3,
    )
    return None
