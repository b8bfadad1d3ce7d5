"""Co-localise digits with an attention transformer and a triplet loss.

The co-localisation experiment of Jaderberg et al. (2015, section 4.5 and
appendix A): the images of one digit class, each digit at a random place
of an 84x84 canvas (`--clutter` adds crops of other digits), and no box
labels. An attention transformer (scale and translation) crops 28x28
views, and a hinge triplet loss asks that the crops `T_n`, `T_m` of two
images of the class be closer to each other than the crop of image `n` is
to a random crop `R_n` of it, in the features `e` of an MNIST classifier:

    max(0, |e(T_n) - e(T_m)|^2 - |e(T_n) - e(R_n)|^2 + margin), margin 1.

The only view that all the images share is the digit, so the transformer
learns to crop it. The measure is the share of test images whose sampled
box has an intersection over union (IoU) above 0.5 with the digit's true
28x28 box, per digit class (the paper: 100% on translated digits, 75-93%
in clutter).

Here `e` is the flattened features (before the softmax) of
`mnist_models.build_classifier("cnn", 28)`, trained on the 28x28 training
digits of every class for `--encoder-epochs` and then frozen, scaled to
unit length (so that squared distances are of the order of the margin).
The localization net is `mnist_models.convolutional_localization_net()`;
the transform is `CanvasWindow`, attention windows that stay on the canvas
and between the digit's size and the canvas', starting with 90% of it
(`--fixed-scale`: digit-sized windows from the centre). The learnt windows
find the digit but stay larger than it (the loss barely tells their
sizes apart), so a refinement phase of `--refine-epochs` then trains
digit-sized windows at their centres, with the same loss. The random crops
have the digit's size (a third of the canvas) and lie wholly on the
canvas. Each image's partner `m` is the next one of its batch. The loss's
other minima, and why these choices avoid some of them:
docs/experiments/colocalisation.md.

`--protocol fresh` places the digits (and the clutter) anew each epoch
(`experiment.FreshEpochs`); in clutter, the windows find the digits when
the first phase trains on the class' canvases without clutter
(`--clean-first-phase`, a curriculum) and a long refinement on cluttered
canvases made anew each epoch follows (the docs give the command).

Usage (`--help` lists the options):

    KERAS_BACKEND=torch python examples/colocalisation.py --digits 0 1 2

Outputs, in `--output-dir` (default `outputs/colocalisation/translated` or
`.../cluttered`): `results.json` with the share and mean IoU per digit
class, the encoder's test accuracy, the settings and wall times;
`encoder.keras` and, per class, `model_digit<d>.keras`; `colocalisation.
png`, a row of test canvases per class with the true box (green) and the
predicted one (red); and the transformer's pictures per class in
`snapshots/digit<d>/`, from the start and after every epoch.
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

import keras_stn
from keras_stn import SpatialTransformer
from keras_stn.callbacks import TransformerSnapshot

from distortions import add_clutter
from experiment import PICTURE_SAMPLES
from experiment import TRANSFORMER_NAME
from experiment import add_protocol_argument
from experiment import add_training_arguments
from experiment import cosine_adam
from experiment import non_negative_int
from experiment import positive_int
from experiment import protocol_suffix
from experiment import save_results
from experiment import training_data
from mnist_data import DIGIT
from mnist_data import check_digits
from mnist_data import load_mnist
from mnist_models import build_classifier
from mnist_models import convolutional_localization_net

CANVAS = 84
# The crops' scale: a digit-sized window of the canvas.
CROP_SCALE = DIGIT / CANVAS
MARGIN = 1.0
# Epochs of the refinement phase (`colocalise`).
REFINE_EPOCHS = 4
# Under `--protocol fresh`, the refinement's canvases are drawn with the
# class' seed plus this, past the seeds of every class' first phase and test
# canvases (`2 * digit` and `2 * digit + 1` from `--seed`).
REFINE_SEED_OFFSET = 20
# Epochs of the encoder: the features of a 2-epoch one let the windows of
# 3s and 5s settle on part of the digit (docs/experiments/colocalisation.md).
ENCODER_EPOCHS = 1
IOU_THRESHOLD = 0.5
# The clutter of an 84x84 canvas: 16 crops of 8x8 pixels of other digits
# (the distorted-MNIST TC set puts 6 on a canvas of 60x60).
CLUTTER_PATCHES = 16
CLUTTER_SIZE = 8
_TRUE_COLOUR = (0, 200, 0)
_PREDICTED_COLOUR = (255, 0, 0)


def place_digits(
    images: np.ndarray,
    seed: int,
    clutter: bool = False,
    clutter_images: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Put each digit at a random place of an 84x84 canvas.

    The digits' 28x28 frames are copied at whole-pixel places drawn
    uniformly among those that keep them on the canvas.

    Args:
        images: uint8 digits `(n, 28, 28)`.
        seed: seed of the places and the clutter; the result depends only
            on the arguments.
        clutter: whether to add `CLUTTER_PATCHES` crops of `CLUTTER_SIZE`
            pixels of random digits (`distortions.add_clutter`) around and
            over the digit.
        clutter_images: the uint8 digits `(m, 28, 28)` that the clutter
            comes from; `None` for `images`.

    Returns:
        `(canvases, boxes)`: float32 canvases `(n, 84, 84, 1)` with values
        in [0, 1], and float32 boxes `(n, 4)`: each digit's frame as
        `(x_min, y_min, x_max, y_max)` in pixel coordinates, pixel `i`
        spanning `[i - 0.5, i + 0.5]` (so a frame at columns 0 to 27 spans
        `x` from -0.5 to 27.5).

    Example:

    >>> canvases, boxes = place_digits(np.ones((2, 28, 28), "uint8"), seed=0)
    >>> canvases.shape, int(np.count_nonzero(canvases[0]))
    ((2, 84, 84, 1), 784)
    >>> boxes[0, 2] - boxes[0, 0]
    np.float32(28.0)
    """
    images = check_digits(images)
    rng = np.random.default_rng(seed)
    n = len(images)
    corners = rng.integers(0, CANVAS - DIGIT + 1, (n, 2))
    canvases = np.zeros((n, CANVAS, CANVAS), "float32")
    span = np.arange(DIGIT)
    rows = corners[:, 0, None, None] + span[:, None]
    cols = corners[:, 1, None, None] + span[None, :]
    canvases[np.arange(n)[:, None, None], rows, cols] = images / 255.0
    if clutter:
        source = images if clutter_images is None else clutter_images
        add_clutter(canvases, source, rng, CLUTTER_PATCHES, CLUTTER_SIZE)
    top_left = corners[:, ::-1] - 0.5
    boxes = np.concatenate([top_left, top_left + DIGIT], axis=1)
    return canvases[..., None], boxes.astype("float32")


def box_iou(boxes: np.ndarray, other_boxes: np.ndarray) -> np.ndarray:
    """The intersection over union of pairs of axis-aligned boxes.

    Args:
        boxes: array `(..., 4)` of `(x_min, y_min, x_max, y_max)`.
        other_boxes: array of the same shape.

    Returns:
        The IoU of each pair, `(...)`, between 0 and 1 (0 where both are
        empty).

    Example:

    >>> float(box_iou(np.array([0, 0, 2, 2]), np.array([1, 0, 3, 2])))
    0.3333333333333333
    """
    boxes, other_boxes = np.asarray(boxes), np.asarray(other_boxes)
    low = np.maximum(boxes[..., :2], other_boxes[..., :2])
    high = np.minimum(boxes[..., 2:], other_boxes[..., 2:])
    intersection = np.prod(np.clip(high - low, 0.0, None), axis=-1)

    def area(b):
        return np.prod(np.clip(b[..., 2:] - b[..., :2], 0.0, None), axis=-1)

    union = area(boxes) + area(other_boxes) - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0)


@keras.saving.register_keras_serializable(package="colocalisation")
class TripletLoss(keras.losses.Loss):
    """The paper's hinge triplet loss for co-localisation.

    `y_pred` stacks, for each image `n` of the batch, the features of its
    transformer crop `T_n` and of a random crop `R_n`; image `n`'s partner
    `m` is the next image of the batch (the first one for the last). The
    loss of image `n` is `max(0, |e(T_n) - e(T_m)|^2 - |e(T_n) -
    e(R_n)|^2 + margin)`. `y_true` is ignored.

    Args:
        margin: the hinge's margin, `alpha` in the paper (1).
        **kwargs: base loss arguments, such as `name` and `reduction`.

    Example:

    >>> features = np.array([[[0.0], [2.0]], [[1.0], [0.0]]], "float32")
    >>> float(TripletLoss()(np.zeros(2), features))  # (0 + 1) / 2
    0.5
    """

    def __init__(self, margin: float = MARGIN, **kwargs):
        super().__init__(**kwargs)
        if not margin >= 0:
            raise ValueError(
                "Invalid value for argument `margin`. Expected a non-negative "
                f"number. Received margin={margin!r}"
            )
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        crops, random_crops = y_pred[:, 0], y_pred[:, 1]
        partners = ops.roll(crops, -1, axis=0)
        positive = ops.sum(ops.square(crops - partners), axis=-1)
        negative = ops.sum(ops.square(crops - random_crops), axis=-1)
        return ops.relu(positive - negative + self.margin)

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin})
        return config


@keras.saving.register_keras_serializable(package="colocalisation")
class UnitLength(keras.layers.Layer):
    """Scale feature vectors to about unit length: `x / sqrt(|x|^2 + eps)`.

    Unlike `keras.layers.UnitNormalization`, whose gradient at the zero
    vector is NaN, it has a gradient everywhere: the features of an empty
    crop are often all zero.

    Args:
        epsilon: the small number added to the squared length.
        **kwargs: base layer arguments, such as `name`.

    Example:

    >>> features = np.array([[3.0, 4.0], [0.0, 0.0]], "float32")
    >>> unit = ops.convert_to_numpy(UnitLength()(features))
    >>> unit.astype(float).round(6).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        squared_length = ops.sum(ops.square(inputs), -1, keepdims=True)
        return inputs * ops.rsqrt(squared_length + self.epsilon)

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="colocalisation")
class FixedScaleAttention(keras_stn.transforms.Attention):
    """Attention at a fixed scale: the parameters are the translation.

    The parameters `(tx, ty)` stand for the `Attention` parameters `(scale,
    tx, ty)`: the window of half-size `scale` centred at `(tx, ty)`, in
    normalized coordinates. The identity `(0, 0)` is the centred window.
    Images only.

    Args:
        scale: the windows' half-size, positive.

    Example:

    >>> transform = FixedScaleAttention(scale=0.5)
    >>> theta = transform.to_affine(np.array([[0.25, 0.0]]))
    >>> ops.convert_to_numpy(theta)[0].tolist()
    [[0.5, 0.0, 0.25], [0.0, 0.5, 0.0]]
    """

    spatial_ranks = (2,)

    def __init__(self, scale: float = CROP_SCALE):
        if not scale > 0:
            raise ValueError(
                "Invalid value for argument `scale`. Expected a positive "
                f"number. Received scale={scale!r}"
            )
        self.scale = float(scale)

    def parameter_shape(self, spatial_rank):
        return (spatial_rank,)

    def identity(self, spatial_rank):
        return np.zeros(spatial_rank)

    def to_affine(self, parameters):
        parameters = ops.convert_to_tensor(parameters)
        scales = ops.full((ops.shape(parameters)[0], 1), self.scale)
        scales = ops.cast(scales, parameters.dtype)
        return super().to_affine(ops.concatenate([scales, parameters], 1))

    def invert(self, parameters):
        # The inverse window has the scale 1 / scale: not of the family.
        return keras_stn.transforms.Transform.invert(self, parameters)

    def get_config(self):
        return {"scale": self.scale}


@keras.saving.register_keras_serializable(package="colocalisation")
class CanvasWindow(keras_stn.transforms.Attention):
    """Attention windows that stay on the input, between two scales.

    The parameters `(a, u, v)` stand for the `Attention` parameters `(s,
    tx, ty)` with `s = min_scale + (1 - min_scale) * sigmoid(a)` and
    `(tx, ty) = (1 - s) * tanh((u, v))`: whatever the parameters, the
    window is at least `min_scale` and at most the whole input, and lies
    on it. The family has no identity; `identity` gives where the
    transformer starts, the centred window of scale `start_scale`.
    With `window_scale`, every window has that scale instead, at the
    centre `(tx, ty)` above: a coarse window's parameters then give a
    window of another size at its centre, still on the input. Images
    only.

    Args:
        min_scale: the smallest scale, in (0, 1).
        start_scale: the scale of the start, in (min_scale, 1).
        window_scale: `None` (the default) for windows of the scale `s`
            above, or the fixed scale of all windows, in (0, min_scale].

    Example:

    >>> window = CanvasWindow(min_scale=0.5, start_scale=0.75)
    >>> start = window.identity(2)[None]
    >>> ops.convert_to_numpy(window.to_affine(start))[0].round(6).tolist()
    [[0.75, 0.0, 0.0], [0.0, 0.75, 0.0]]
    """

    spatial_ranks = (2,)

    def __init__(
        self,
        min_scale: float = CROP_SCALE,
        start_scale: float = 0.9,
        window_scale: float | None = None,
    ):
        if not 0 < min_scale < 1:
            raise ValueError(
                "Invalid value for argument `min_scale`. Expected a number "
                f"in (0, 1). Received min_scale={min_scale!r}"
            )
        if not min_scale < start_scale < 1:
            raise ValueError(
                "Invalid value for argument `start_scale`. Expected a "
                f"number in (min_scale, 1) = ({min_scale}, 1). "
                f"Received start_scale={start_scale!r}"
            )
        if window_scale is not None and not 0 < window_scale <= min_scale:
            raise ValueError(
                "Invalid value for argument `window_scale`. Expected None "
                f"or a number in (0, min_scale] = (0, {min_scale}]. "
                f"Received window_scale={window_scale!r}"
            )
        self.min_scale = float(min_scale)
        self.start_scale = float(start_scale)
        if window_scale is not None:
            window_scale = float(window_scale)
        self.window_scale = window_scale

    def identity(self, spatial_rank):
        share = (self.start_scale - self.min_scale) / (1 - self.min_scale)
        return np.array([np.log(share / (1 - share)), 0.0, 0.0])

    def to_affine(self, parameters):
        parameters = ops.convert_to_tensor(parameters)
        scales = self.min_scale + (1 - self.min_scale) * ops.sigmoid(
            parameters[:, :1]
        )
        centres = (1 - scales) * ops.tanh(parameters[:, 1:])
        if self.window_scale is not None:
            scales = ops.full_like(scales, self.window_scale)
        return super().to_affine(ops.concatenate([scales, centres], 1))

    def invert(self, parameters):
        # The inverse window is larger than the input: not of the family.
        return keras_stn.transforms.Transform.invert(self, parameters)

    def get_config(self):
        return {
            "min_scale": self.min_scale,
            "start_scale": self.start_scale,
            "window_scale": self.window_scale,
        }


@keras.saving.register_keras_serializable(package="colocalisation")
class RandomCrops(keras.layers.Layer):
    """Crop each image at a random place, at a fixed attention scale.

    The windows have half-size `scale` in normalized coordinates (a share
    `scale` of the image's side) and centres drawn uniformly among those
    that keep them on the image, afresh at every call.

    Args:
        output_size: `(height, width)` of the crops.
        scale: the windows' scale, in (0, 1].
        seed: seed of the windows' places.
        **kwargs: base layer arguments, such as `name`.

    Call arguments:
        inputs: a batch of channels-last images.

    Returns:
        The crops, `(batch, *output_size, channels)`.

    Example:

    >>> crops = RandomCrops((2, 2), scale=0.5)(np.ones((3, 8, 8, 1)))
    >>> tuple(crops.shape)
    (3, 2, 2, 1)
    """

    def __init__(self, output_size, scale: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 0 < scale <= 1:
            raise ValueError(
                "Invalid value for argument `scale`. Expected a number in "
                f"(0, 1]. Received scale={scale!r}"
            )
        self.output_size = tuple(output_size)
        self.scale = float(scale)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.attention = keras_stn.transforms.Attention()

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        limit = 1.0 - self.scale
        centres = keras.random.uniform(
            (batch, 2), -limit, limit, seed=self.seed_generator
        )
        scales = ops.full((batch, 1), self.scale)
        theta = self.attention.to_affine(ops.concatenate([scales, centres], 1))
        return keras_stn.ops.warp_affine(
            inputs, theta, self.output_size, data_format="channels_last"
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_size": self.output_size,
                "scale": self.scale,
                "seed": self.seed,
            }
        )
        return config


def build_colocaliser(
    encoder: keras.Model,
    seed: int = 0,
    fixed_scale: bool = False,
    refined: bool = False,
) -> keras.Model:
    """The co-localisation net: attention crops and their features.

    Args:
        encoder: the frozen features `e`, from 28x28 digits to vectors.
        seed: seed of the random crops.
        fixed_scale: `False` learns the windows' scale, between the
            digit's and the canvas' (`CanvasWindow`, starting with 90% of
            the canvas); `True` crops windows of the digit's size
            (`FixedScaleAttention`, starting at the centre, kept on the
            canvas by `theta_bound`).
        refined: with `fixed_scale=False`, crop windows of the digit's
            size at the centres of the learnt windows (`CanvasWindow`
            with `window_scale`): the net of the refinement phase, whose
            transformer takes the weights of a trained co-localiser's.

    Returns:
        An uncompiled model from canvases `(batch, 84, 84, 1)` to the
        features `(batch, 2, features)` of the transformer's crop and of
        a random crop of each, what `TripletLoss` takes. Its layer
        `TRANSFORMER_NAME` is the attention `SpatialTransformer`.
    """
    if fixed_scale and refined:
        raise ValueError(
            "`refined=True` refines the learnt windows of "
            "`fixed_scale=False`; it cannot be combined with "
            "`fixed_scale=True`."
        )
    if fixed_scale:
        transform = FixedScaleAttention()
    else:
        transform = CanvasWindow(window_scale=CROP_SCALE if refined else None)
    canvases = keras.Input((CANVAS, CANVAS, 1))
    transformer = SpatialTransformer(
        convolutional_localization_net(),
        transform=transform,
        output_size=(DIGIT, DIGIT),
        # Keep the windows on the canvas: a window wholly off it shows
        # nothing, the same for every image, a degenerate minimum.
        theta_bound=1 - CROP_SCALE if fixed_scale else None,
        name=TRANSFORMER_NAME,
    )
    random_crops = RandomCrops((DIGIT, DIGIT), CROP_SCALE, seed, name="random")
    features = [
        keras.layers.Reshape((1, -1))(encoder(crops))
        for crops in (transformer(canvases), random_crops(canvases))
    ]
    outputs = keras.layers.Concatenate(axis=1)(features)
    return keras.Model(canvases, outputs, name="colocaliser")


def predicted_boxes(
    transformer: SpatialTransformer, canvases: np.ndarray, batch_size: int
) -> np.ndarray:
    """The boxes of the canvases that a trained transformer samples.

    The box of the sampling points (`keras_stn.ops.sampled_boxes`),
    widened by half the points' spacing on each side: the region whose
    pixels the crop shows, in the convention of `place_digits`' boxes.

    Args:
        transformer: the co-localiser's attention `SpatialTransformer`.
        canvases: float32 canvases `(n, 84, 84, 1)`.
        batch_size: how many canvases to localise at a time.

    Returns:
        float32 boxes `(n, 4)`, `(x_min, y_min, x_max, y_max)` in pixels.
    """
    boxes = []
    for start in range(0, len(canvases), batch_size):
        theta = transformer.compute_theta(canvases[start : start + batch_size])
        sampled = keras_stn.ops.sampled_boxes(
            transformer.transform, theta, (CANVAS, CANVAS), (DIGIT, DIGIT)
        )
        boxes.append(ops.convert_to_numpy(sampled.pixels))
    boxes = np.concatenate(boxes)
    half_step = (boxes[:, 2:] - boxes[:, :2]) / (2 * (DIGIT - 1))
    half_step = np.tile(half_step, 2) * [-1, -1, 1, 1]
    return (boxes + half_step).astype("float32")


def draw_boxes(
    canvases: np.ndarray, true_boxes: np.ndarray, boxes: np.ndarray
) -> np.ndarray:
    """Draw canvases in a row with their true and predicted boxes.

    Args:
        canvases: float canvases `(n, size, size, 1)` in [0, 1].
        true_boxes: their true boxes `(n, 4)`, drawn in green.
        boxes: the predicted boxes `(n, 4)`, drawn in red.

    Returns:
        A uint8 RGB picture `(size + 2, n * (size + 2), 3)`: the canvases
        side by side with a 1-pixel white margin.
    """
    tiles = []
    for canvas, true_box, box in zip(canvases, true_boxes, boxes, strict=True):
        tile = np.repeat(np.round(255 * canvas), 3, axis=-1).astype("uint8")
        for outline, colour in (
            (true_box, _TRUE_COLOUR),
            (box, _PREDICTED_COLOUR),
        ):
            _draw_outline(tile, outline, colour)
        tiles.append(
            np.pad(tile, ((1, 1), (1, 1), (0, 0)), constant_values=255)
        )
    return np.concatenate(tiles, axis=1)


def localisation_metrics(boxes: np.ndarray, true_boxes: np.ndarray) -> dict:
    """How well predicted boxes match the true ones.

    Args:
        boxes: the predicted boxes `(n, 4)`, as `predicted_boxes` gives.
        true_boxes: the true boxes `(n, 4)`.

    Returns:
        A dict: `iou_share_percent`, the share of boxes whose IoU with
        their true box is above `IOU_THRESHOLD` (the paper's measure);
        `mean_iou`; `centre_box_share_percent`, the same share for the
        canvas' centred 28x28 box, a baseline; `digit_box_share_percent`,
        the same share for 28x28 boxes at the predicted boxes' centres
        (where the boxes are, whatever their size); `mean_centre_error`, the
        mean distance of the boxes' centres, in pixels; and
        `mean_predicted_side`, the boxes' mean width, in pixels.

    Example:

    >>> true_boxes = np.array([[0.0, 0.0, 28.0, 28.0]] * 2)
    >>> boxes = true_boxes + [[0, 0, 0, 0], [14, 0, 14, 0]]
    >>> localisation_metrics(boxes, true_boxes)["iou_share_percent"]
    50.0
    """
    iou = box_iou(boxes, true_boxes)
    centred = np.array([CANVAS - DIGIT] * 2 + [CANVAS + DIGIT] * 2) / 2 - 0.5
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    true_centres = (true_boxes[:, :2] + true_boxes[:, 2:]) / 2
    # The digit-sized boxes at the predicted centres.
    low = centres - DIGIT / 2
    return {
        "iou_share_percent": _percent(iou > IOU_THRESHOLD),
        "mean_iou": round(float(np.mean(iou)), 3),
        "centre_box_share_percent": _percent(
            box_iou(centred, true_boxes) > IOU_THRESHOLD
        ),
        "digit_box_share_percent": _percent(
            box_iou(np.concatenate([low, low + DIGIT], 1), true_boxes)
            > IOU_THRESHOLD
        ),
        "mean_centre_error": round(
            float(np.mean(np.linalg.norm(centres - true_centres, axis=1))), 1
        ),
        "mean_predicted_side": round(
            float(np.mean(boxes[:, 2] - boxes[:, 0])), 1
        ),
    }


def _percent(flags):
    return round(100 * float(np.mean(flags)), 1)


def _draw_outline(tile, box, colour):
    """Draw the outline of `box` on `tile` (in place), clipped to it."""
    size = tile.shape[0]
    # The outline runs along the box's outermost pixels.
    left, top = np.clip(np.round(box[:2] + 0.5), 0, size - 1).astype(int)
    right, bottom = np.clip(np.round(box[2:] - 0.5), 0, size - 1).astype(int)
    tile[top, left : right + 1] = colour
    tile[bottom, left : right + 1] = colour
    tile[top : bottom + 1, left] = colour
    tile[top : bottom + 1, right] = colour


def train_encoder(
    digits: np.ndarray,
    labels: np.ndarray,
    test: tuple[np.ndarray, np.ndarray],
    args: argparse.Namespace,
) -> tuple[keras.Model, float]:
    """Train the MNIST classifier whose features are `e`.

    Args:
        digits: uint8 training digits `(n, 28, 28)` of every class.
        labels: their labels.
        test: the test digits and labels, for its accuracy.
        args: the parsed command line (`--encoder-epochs`,
            `--batch-size`, `--verbose`).

    Returns:
        `(encoder, accuracy)`: the classifier's features before its
        softmax layer, scaled to unit length (`UnitLength`), frozen; and
        its test accuracy.
    """
    classifier = build_classifier("cnn", DIGIT)
    classifier.compile(
        optimizer=cosine_adam(
            args.encoder_epochs, len(digits), args.batch_size
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    classifier.fit(
        digits[..., None] / np.float32(255),
        labels,
        batch_size=args.batch_size,
        epochs=args.encoder_epochs,
        verbose=args.verbose,
    )
    _, accuracy = classifier.evaluate(
        test[0][..., None] / np.float32(255),
        test[1],
        batch_size=args.batch_size,
        verbose=args.verbose,
    )
    features = UnitLength()(classifier.layers[-2].output)
    encoder = keras.Model(classifier.inputs, features, name="encoder")
    encoder.trainable = False
    return encoder, float(accuracy)


def colocalise(
    encoder: keras.Model,
    digits: np.ndarray,
    clutter_images: np.ndarray,
    test: tuple[np.ndarray, np.ndarray],
    args: argparse.Namespace,
    digit: int,
) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """Train a co-localiser on the canvases of one class.

    `--epochs` train the windows (`build_colocaliser`); then, unless
    `--fixed-scale`, `--refine-epochs` train digit-sized windows at their
    centres (`refined=True`), from the first phase's weights.

    Args:
        encoder: the frozen features `e`.
        digits: the training digits of the class, uint8 `(n, 28, 28)`.
        clutter_images: the digits that the clutter comes from, where
            `--clutter` (not in the first phase with `--clean-first-phase`).
        test: the test canvases of the class and their true boxes.
        args: the parsed command line.
        digit: the class, which names the snapshots' folder and sets the
            seed of the training canvases (`class_seed`; under `--protocol
            fresh`, the refinement's plus `REFINE_SEED_OFFSET`).

    Returns:
        `(model, boxes, coarse_boxes)`: the trained co-localiser, its
        predicted boxes of the test canvases, and those of the first
        phase (the same as `boxes` without a refinement phase).
    """
    phases = [
        (
            build_colocaliser(encoder, args.seed, args.fixed_scale),
            class_seed(args, digit),
            args.clutter and not args.clean_first_phase,
            args.epochs,
            args.learning_rate,
            f"digit{digit}",
        )
    ]
    if not args.fixed_scale and args.refine_epochs:
        phases.append(
            (
                build_colocaliser(encoder, args.seed, refined=True),
                # The same canvases under `"fixed"`, new ones under
                # `"fresh"`.
                class_seed(args, digit)
                + (REFINE_SEED_OFFSET if args.protocol == "fresh" else 0),
                args.clutter,
                args.refine_epochs,
                args.refine_learning_rate,
                f"digit{digit}_refined",
            )
        )
    boxes = []
    for index, phase in enumerate(phases):
        model, seed, clutter, epochs, learning_rate, name = phase
        transformer = model.get_layer(TRANSFORMER_NAME)
        if index:  # The refinement starts where the first phase ended.
            previous = phases[index - 1][0].get_layer(TRANSFORMER_NAME)
            transformer.set_weights(previous.get_weights())
        data = training_canvases(
            digits, seed, args, epochs, clutter_images if clutter else None
        )
        _fit_windows(
            model,
            data,
            len(digits),
            test[0],
            args,
            epochs,
            name,
            learning_rate,
        )
        boxes.append(predicted_boxes(transformer, test[0], args.batch_size))
    return model, boxes[-1], boxes[0]


def class_seed(args: argparse.Namespace, digit: int) -> int:
    """The seed of a class' training canvases, `--seed` + 2 * `digit`; its
    test canvases use the next one, so that every class has its own."""
    return args.seed + 2 * digit


def training_canvases(
    digits: np.ndarray,
    seed: int,
    args: argparse.Namespace,
    epochs: int,
    clutter_images: np.ndarray | None = None,
) -> dict:
    """`fit`'s training arguments for one phase, under `--protocol`.

    The targets are zeros, which `TripletLoss` ignores.

    Args:
        digits: uint8 training digits `(n, 28, 28)` of one class.
        seed: seed of the canvases (`place_digits`); under `"fresh"`, of
            the epochs (`experiment.FreshEpochs`).
        args: the parsed command line (`--protocol`, `--batch-size`).
        epochs: the phase's epochs.
        clutter_images: the uint8 digits that the canvases' clutter comes
            from; `None` for canvases without clutter.

    Returns:
        A dict of `fit` arguments: the canvases placed once under
        `"fixed"`, or `FreshEpochs.fit_arguments` under `"fresh"`, whose
        every epoch places the digits (and the clutter) anew.
    """

    def make(digits, seed):
        clutter = clutter_images is not None
        return place_digits(digits, seed, clutter, clutter_images)[0]

    inputs = digits if args.protocol == "fresh" else make(digits, seed)
    targets = np.zeros(len(digits), "float32")
    return training_data(inputs, targets, args, make, seed, epochs)


def _fit_windows(
    model, data, samples, pictured, args, epochs, name, learning_rate
):
    """Train a co-localiser on `fit`'s arguments `data` (`samples` canvases
    an epoch), drawing its transformer in `snapshots/name`."""
    model.compile(
        optimizer=cosine_adam(
            epochs,
            samples,
            args.batch_size,
            learning_rate,
        ),
        loss=TripletLoss(),
    )
    snapshots = TransformerSnapshot(
        pictured[:PICTURE_SAMPLES],
        output_dir=args.output_dir / "snapshots" / name,
        log_dir=args.log_dir and args.log_dir / name,
        layer=TRANSFORMER_NAME,
    )
    model.fit(
        **data,
        epochs=epochs,
        verbose=args.verbose,
        callbacks=[snapshots],
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--digits",
        type=int,
        nargs="+",
        choices=range(10),
        default=list(range(10)),
        metavar="DIGIT",
        help="the digit classes to co-localise, one net each (default: all)",
    )
    parser.add_argument(
        "--clutter",
        action="store_true",
        help=f"add {CLUTTER_PATCHES} crops of {CLUTTER_SIZE}x{CLUTTER_SIZE} "
        "pixels of other digits to each canvas",
    )
    parser.add_argument(
        "--clean-first-phase",
        action="store_true",
        help="with --clutter, train the first phase on canvases without "
        "clutter, and only the refinement on cluttered ones (a curriculum)",
    )
    parser.add_argument(
        "--fixed-scale",
        action="store_true",
        help="crop windows of the digit's size, starting at the centre (the "
        "default learns their scale, starting with 90%% of the canvas)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-2,
        help="the co-localisers' initial learning rate, decaying to 0 along "
        "a cosine (default: %(default)s)",
    )
    parser.add_argument(
        "--refine-epochs",
        type=non_negative_int,
        default=REFINE_EPOCHS,
        help="epochs of the refinement phase, which trains digit-sized "
        "windows at the learnt windows' centres; 0 skips it; not with "
        "--fixed-scale (default: %(default)s)",
    )
    parser.add_argument(
        "--refine-learning-rate",
        type=float,
        default=1e-3,
        help="the refinement phase's initial learning rate, decaying to 0 "
        "along a cosine (default: %(default)s)",
    )
    parser.add_argument(
        "--encoder-epochs",
        type=positive_int,
        default=ENCODER_EPOCHS,
        help="training epochs of the MNIST classifier (default: %(default)s)",
    )
    add_protocol_argument(parser)
    add_training_arguments(parser, epochs=8, batch_size=64)
    args = parser.parse_args(argv)
    if args.clean_first_phase and not (
        args.clutter and args.refine_epochs and not args.fixed_scale
    ):
        parser.error(
            "--clean-first-phase needs --clutter and a refinement phase "
            "(--refine-epochs above 0, not --fixed-scale), which trains on "
            "the cluttered canvases"
        )
    if args.output_dir is None:
        name = "cluttered" if args.clutter else "translated"
        if args.fixed_scale:
            name += "_fixed_scale"
        if args.clean_first_phase:
            name += "_clean_first_phase"
        name += protocol_suffix(args)
        args.output_dir = Path("outputs") / "colocalisation" / name
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; return the results it saves in `results.json`.

    `--train-samples` and `--test-samples` keep the first images of each
    class. Their `seconds` is the wall time of this function, from loading
    the data to saving the results; each class' own is its training and
    measuring.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    encoder, encoder_accuracy = train_encoder(
        x_train, y_train, (x_test, y_test), args
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    encoder.save(args.output_dir / "encoder.keras")
    per_digit, rows = {}, []
    for digit in args.digits:
        digit_start = time.perf_counter()
        digits = x_train[y_train == digit][: args.train_samples]
        test = place_digits(
            x_test[y_test == digit][: args.test_samples],
            class_seed(args, digit) + 1,
            args.clutter,
            x_test,
        )
        model, boxes, coarse_boxes = colocalise(
            encoder, digits, x_train, test, args, digit
        )
        model.save(args.output_dir / f"model_digit{digit}.keras")
        per_digit[str(digit)] = {
            **localisation_metrics(boxes, test[1]),
            "before_refinement": localisation_metrics(coarse_boxes, test[1]),
            "train_samples": len(digits),
            "test_samples": len(test[0]),
            "seconds": round(time.perf_counter() - digit_start, 1),
        }
        rows.append(
            draw_boxes(
                test[0][:PICTURE_SAMPLES],
                test[1][:PICTURE_SAMPLES],
                boxes[:PICTURE_SAMPLES],
            )
        )
        print(
            f"Digit {digit}: IoU > {IOU_THRESHOLD} on "
            f"{per_digit[str(digit)]['iou_share_percent']}% of "
            f"{len(test[0])} test images."
        )
    keras.utils.save_img(
        args.output_dir / "colocalisation.png",
        np.concatenate(rows, axis=0),
        scale=False,
    )
    results = {
        "clutter": args.clutter,
        "fixed_scale": args.fixed_scale,
        "clean_first_phase": args.clean_first_phase,
        "protocol": args.protocol,
        "digits": per_digit,
        "encoder_accuracy": encoder_accuracy,
        "encoder_epochs": args.encoder_epochs,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "refine_epochs": 0 if args.fixed_scale else args.refine_epochs,
        "refine_learning_rate": args.refine_learning_rate,
        "batch_size": args.batch_size,
        "backend": keras.backend.backend(),
        "seconds": round(time.perf_counter() - start, 1),
        "seed": args.seed,
    }
    save_results(args.output_dir, results)
    return results


if __name__ == "__main__":
    main()
