"""The base class of the transform families."""

import numpy as np
from keras import ops

from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_same_batch
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import standardize_size
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Size
from keras_stn.typing import Tensor


class Transform:
    """A family of spatial transforms, differentiable in its parameters.

    A transform family turns a vector of parameters per example (what the
    localization network regresses) into a sampling grid. It knows how many
    parameters it takes and which ones give the identity, so that
    `SpatialTransformer` can start at "do nothing" whatever the family.

    Subclasses implement `parameter_shape`, `identity`, `pixel_grid`,
    `normalized_grid` and `map_checked_points` (and `invert` where the
    family has a closed-form inverse), set
    `spatial_ranks` to the numbers of spatial axes they support, set
    `unknown_sizes = False` if `normalized_grid` needs Python int sizes
    (rather than sizes only known when a traced graph runs), and
    implement `get_config` when their constructor takes arguments.

    Example:

    >>> from keras_stn.transforms import Attention
    >>> Attention().parameter_shape(spatial_rank=2)
    (3,)
    """

    spatial_ranks = (2,)
    unknown_sizes = True

    def parameter_shape(self, spatial_rank: int) -> tuple[int, ...]:
        """Return the shape of one example's parameters.

        Args:
            spatial_rank: 2 for images, 3 for volumes.

        Returns:
            A tuple of ints, for example `(2, 3)` for a 2-D affine matrix.
        """
        raise NotImplementedError

    def identity(self, spatial_rank: int) -> np.ndarray:
        """Return the parameters of the identity transform.

        Args:
            spatial_rank: 2 for images, 3 for volumes.

        Returns:
            A float64 NumPy array of shape `parameter_shape(spatial_rank)`.
        """
        raise NotImplementedError

    def pixel_grid(
        self,
        parameters: Tensor,
        input_size: Size,
        output_size: Size,
        align_corners: bool,
    ) -> list[Tensor]:
        """Return the sampling points in input pixel coordinates.

        Args:
            parameters: float tensor of shape `(batch, *parameter_shape)`.
            input_size: the spatial sizes of the images to be sampled.
            output_size: the spatial sizes of the output.
            align_corners: the convention of `keras_stn.ops.coordinates`.

        Returns:
            The coordinates `[x, y]` (or `[x, y, z]`) of the points, each of
            shape `(batch, *output_size)`; pixel `i` has its centre at `i`.
        """
        raise NotImplementedError

    def grid(
        self,
        parameters: Tensor,
        output_size: Size,
        align_corners: bool = False,
    ) -> Tensor:
        """Return the normalized sampling grid of a batch of parameters.

        The grid of `keras_stn.ops.affine_grid`'s convention: feed it to
        `keras_stn.ops.grid_sample`.

        Args:
            parameters: float tensor of shape `(batch, *parameter_shape)`.
            output_size: `(height, width)`, or `(depth, height, width)`.
            align_corners: the convention of `keras_stn.ops.coordinates`.

        Returns:
            A tensor of shape `(batch, *output_size, spatial_rank)`.
        """
        output_size = standardize_size(output_size, "output_size", rank=None)
        parameters = self.check_parameters(parameters, len(output_size))
        return self.normalized_grid(parameters, output_size, align_corners)

    def normalized_grid(
        self, parameters: Tensor, output_size: Size, align_corners: bool
    ) -> Tensor:
        """Return the normalized grid of checked arguments (see `grid`)."""
        raise NotImplementedError

    def map_points(self, parameters: Tensor, points: Tensor) -> Tensor:
        """Map points of the output to the input points that they sample.

        Exactly the points that the family's grid samples: the grid is
        these points at the centres of the output pixels. Use it to carry
        points or boxes found on a transformer's output back to its input.

        Args:
            parameters: float tensor of shape `(batch, *parameter_shape)`.
            points: float tensor of shape `(batch, num_points, 2)` (or `3`
                for volumes), normalized `(x, y[, z])` output coordinates,
                as in `keras_stn.ops.affine_grid`; cast to the dtype of
                `parameters`.

        Returns:
            The normalized input coordinates, `(batch, num_points, 2)` (or
            `3`), of the dtype of `parameters`.

        Example:

        >>> from keras import ops
        >>> from keras_stn.transforms import Attention
        >>> zoom = np.array([[0.5, 0.25, 0.0]])  # (s, tx, ty)
        >>> corners = np.array([[[-1.0, -1.0], [1.0, 1.0]]])
        >>> mapped = Attention().map_points(zoom, corners)
        >>> ops.convert_to_numpy(mapped)[0].tolist()
        [[-0.25, -0.5], [0.75, 0.5]]
        """
        points = to_tensor(points, "points")
        check_float_dtype(points, "points")
        shape = tuple(points.shape)
        if len(shape) != 3 or shape[-1] not in (2, 3):
            raise ValueError(
                "Invalid shape for argument `points`. Expected a tensor of "
                "shape (batch, num_points, 2), or (batch, num_points, 3) "
                f"for volumes. Received points.shape={shape}"
            )
        spatial_rank = shape[-1]
        parameters = self.check_parameters(parameters, spatial_rank)
        check_same_batch(parameters, "parameters", points, "points")
        points = ops.cast(points, parameters.dtype)
        return self.map_checked_points(parameters, points)

    def map_checked_points(self, parameters: Tensor, points: Tensor) -> Tensor:
        """Map points with checked arguments (see `map_points`)."""
        raise NotImplementedError

    def invert(self, parameters: Tensor) -> Tensor:
        """Return the parameters of the inverse transforms, of this family.

        Where `parameters` map output points to input points, the result
        maps them back: `map_points(invert(p), map_points(p, q)) == q` up
        to float rounding. Families with a closed-form inverse within the
        family (`Affine`, `Attention`, `Similarity`, `Projective`) have
        one; others raise a `ValueError`. Parameters without an inverse
        (a scale of 0, a singular matrix) give non-finite values (`inf` or
        `nan`), with no error, since values are only known when a graph
        runs.

        Args:
            parameters: float tensor of shape `(batch, *parameter_shape)`
                for images or volumes.

        Returns:
            The inverse's parameters, of the shape and dtype of
            `parameters`.

        Example:

        >>> from keras import ops
        >>> from keras_stn.transforms import Attention
        >>> inverse = Attention().invert(np.array([[0.5, 0.25, 0.125]]))
        >>> ops.convert_to_numpy(inverse)[0].tolist()
        [2.0, -0.5, -0.25]
        """
        raise ValueError(
            f"The transform {type(self).__name__} has no closed-form "
            "inverse within its family: `invert` is available for Affine, "
            "Attention, Similarity and Projective"
        )

    def check_spatial_rank(self, spatial_rank: int) -> None:
        """Raise a `ValueError` if the family does not support the rank."""
        if spatial_rank not in self.spatial_ranks:
            kinds = {2: "images (4-D inputs)", 3: "volumes (5-D inputs)"}
            supported = " and ".join(kinds[r] for r in self.spatial_ranks)
            raise ValueError(
                f"The transform {type(self).__name__} supports {supported} "
                f"only. Received an input with {spatial_rank} spatial axes"
            )

    def check_parameters(self, parameters: Tensor, spatial_rank: int):
        """Check a batch of parameters and return it as a tensor."""
        self.check_spatial_rank(spatial_rank)
        parameters = to_tensor(parameters, "parameters")
        check_float_dtype(parameters, "parameters")
        shape = self.parameter_shape(spatial_rank)
        check_shape(
            parameters,
            "parameters",
            rank=len(shape) + 1,
            last_dims=shape,
            description=f"(batch, {', '.join(map(str, shape))}) for "
            f"{type(self).__name__} with {spatial_rank} spatial axes",
        )
        return parameters

    def check_any_parameters(self, parameters: Tensor):
        """Check parameters of images or volumes, as their shape says."""
        parameters = to_tensor(parameters, "parameters")
        ranks = [
            rank
            for rank in self.spatial_ranks
            if tuple(parameters.shape[1:]) == self.parameter_shape(rank)
        ]
        return self.check_parameters(parameters, (ranks or [2])[0])

    def get_config(self) -> dict:
        """Return the constructor arguments, for serialization."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Transform":
        """Create a transform from the output of `get_config`."""
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(
            f"{k}={v!r}" for k, v in self.get_config().items()
        )
        return f"{type(self).__name__}({arguments})"
