"""Grid generators: each transform family's parameters to sampling points.

`affine`, `projective` and `thin_plate_spline` compute, for every output
pixel, the point of the input it samples, as a normalized grid (what
`grid_sample` takes) or in pixels (what the layer and `warp_affine` sample,
with the identity exact); `homogeneous` holds what the matrix families
share.
"""
