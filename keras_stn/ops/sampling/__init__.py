"""The sampler: reading images at sampling points, on every backend.

`sampler` holds its entry points (`grid_sample`, `sample_pixels`);
`dispatch` decides which implementation samples (its table lists them all);
`generic` is the `keras.ops` sampler that every other path matches;
`nonfinite` is the rule for NaN and infinite points, and `antialiasing` the
mip pyramid read where a grid zooms out. The faster paths:
`pytorch_grid_sample` (PyTorch's kernel), `xla_clusters` (TensorFlow's XLA)
and `cpp_kernel` (keras-stn's C++ kernel and its bindings).
"""
