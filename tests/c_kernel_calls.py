"""Calls of the C++ kernel's C interface (`c_bilinear_sampling.cc`) on NumPy
buffers, with nothing but NumPy and ctypes imported: a process that forks
can use it without a framework's threads."""

import ctypes

import numpy as np


def kernel_sample(
    library: ctypes.CDLL,
    images: np.ndarray,
    grid: np.ndarray,
    coordinates: int,
    threads: int = 2,
) -> np.ndarray:
    """`KerasStnBilinearSample` of float32 images at a 2-D grid, zeros
    padding.

    Args:
        library: the kernel's library.
        images: `(batch, height, width, channels)`, float32, contiguous.
        grid: `(batch, *output_shape, 2)`, float32, contiguous.
        coordinates: the kernel's code of the grid's convention.
        threads: how many threads may share the work.

    Returns:
        The samples, `(batch, *output_shape, channels)`.
    """
    outputs = np.empty((*grid.shape[:-1], images.shape[-1]), np.float32)
    status = library.KerasStnBilinearSample(
        0,
        images.ctypes.data_as(ctypes.c_void_p),
        grid.ctypes.data_as(ctypes.c_void_p),
        outputs.ctypes.data_as(ctypes.c_void_p),
        2,
        (ctypes.c_int64 * 4)(*images.shape),
        ctypes.c_int64(int(np.prod(grid.shape[1:-1]))),
        0,
        coordinates,
        threads,
    )
    if status != 0:
        raise ValueError(f"the kernel returned {status}")
    return outputs
