"""A tiny SVHN split in the real format, for the street-number tests."""

import h5py
import numpy as np
from PIL import Image

RED, BLUE = (255, 0, 0), (0, 0, 255)

# Image name, then one `(label, left, top, width, height)` per digit. The
# first number's union box is 20x20 at (left 30, top 10), so its crop,
# enlarged by 30%, is the box (27, 7, 53, 33); the second one's crop,
# (-3, 7, 23, 33), reaches 3 pixels past the image's left edge. The third
# number has six digits, which the loader drops.
NUMBERS = [
    ("1.png", [(1, 30, 10, 8, 20), (9, 42, 12, 8, 18)]),
    ("2.png", [(10, 0, 10, 20, 20)]),
    ("3.png", [(k, 5 + 12 * k, 8, 10, 20) for k in range(1, 7)]),
    (
        "4.png",
        [
            (label, 4 + 14 * k, 8, 12, 24)
            for k, label in enumerate((2, 10, 3, 4, 5))
        ],
    ),
]


def write_digit_struct(path, numbers):
    """Write `numbers` to `path` in the layout of SVHN's `digitStruct.mat`.

    As MATLAB does, a one-digit box field holds its value and a longer one
    holds references to `(1, 1)` datasets in the group `#refs#`.
    """
    with h5py.File(path, "w") as file:
        refs = file.create_group("#refs#")

        def reference(data):
            return refs.create_dataset(str(len(refs)), data=data).ref

        names = np.empty((len(numbers), 1), h5py.ref_dtype)
        boxes = np.empty((len(numbers), 1), h5py.ref_dtype)
        for i, (name, digits) in enumerate(numbers):
            codes = np.array([[ord(c)] for c in name], "uint16")
            names[i, 0] = reference(codes)
            box = refs.create_group(f"box{i}")
            for key, values in zip(
                ("label", "left", "top", "width", "height"),
                zip(*digits, strict=True),
                strict=True,
            ):
                if len(values) == 1:
                    box.create_dataset(key, data=[[float(values[0])]])
                else:
                    field = [[reference([[float(v)]])] for v in values]
                    box.create_dataset(key, data=field, dtype=h5py.ref_dtype)
            boxes[i, 0] = box.ref
        group = file.create_group("digitStruct")
        group.create_dataset("name", data=names, dtype=h5py.ref_dtype)
        group.create_dataset("bbox", data=boxes, dtype=h5py.ref_dtype)


def painted(digits):
    """A 40x80 blue RGB image with the union box of `digits` painted red."""
    pixels = np.zeros((40, 80, 3), "uint8")
    pixels[...] = BLUE
    _, left, top, width, height = np.array(digits).T
    right, bottom = (left + width).max(), (top + height).max()
    pixels[top.min() : bottom, left.min() : right] = RED
    return Image.fromarray(pixels)


def write_svhn_split(folder):
    """Write `NUMBERS` to `folder` as an SVHN split: PNGs, digitStruct.mat."""
    folder.mkdir(parents=True)
    for name, digits in NUMBERS:
        painted(digits).save(folder / name)
    write_digit_struct(folder / "digitStruct.mat", NUMBERS)
