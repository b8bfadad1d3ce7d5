"""keras-stn's C++ sampling kernel, its build, and its three bindings.

`bilinear_sampling.h` samples bilinearly (trilinearly for volumes) with
`"zeros"` or `"border"` padding, forward and backward, with the generic
sampler's arithmetic and rule for NaN and infinite points. `build.py`
compiles it on first use; each backend calls it through its own binding,
beside its source: TensorFlow ops (`tf_bilinear_sampling.cc`,
`tensorflow_ops.py`), XLA's foreign function interface on JAX
(`jax_bilinear_sampling.cc`, `jax_ffi.py`) and plain C functions through
`ctypes` on torch (`c_bilinear_sampling.cc`, `torch_ctypes.py`).
`keras_stn.ops.sampling.dispatch` decides where each runs.
"""
