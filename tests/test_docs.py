"""Every public name is documented, as the API reference shows it.

The reference pages (`docs/api/`) are generated from the docstrings by
mkdocstrings, which renders a missing docstring as an empty entry; this test
makes it an error instead. `mkdocs build --strict` (`make docs`, part of
`make test`) checks the pages' links.
"""

import inspect
from pathlib import Path

import keras
import pytest

import keras_stn

API_TABLE = Path(__file__).resolve().parents[1] / "docs" / "api" / "index.md"
# Methods that Keras defines and documents (`call`, `build`, `get_config`,
# `on_epoch_end`...): Keras' own layers do not document them again.
KERAS_BASES = (keras.layers.Layer, keras.losses.Loss, keras.callbacks.Callback)
PUBLIC_MODULES = [
    keras_stn,
    keras_stn.ops,
    keras_stn.layers,
    keras_stn.transforms,
    keras_stn.losses,
    keras_stn.callbacks,
]
PUBLIC_NAMES = [
    (module.__name__, name, getattr(module, name))
    for module in PUBLIC_MODULES
    for name in module.__all__
    if not name.startswith("__") and not inspect.ismodule(getattr(module, name))
]


@pytest.mark.parametrize(
    "module, name, value",
    PUBLIC_NAMES,
    ids=[f"{module}.{name}" for module, name, _ in PUBLIC_NAMES],
)
def test_public_names_have_keras_style_docstrings(module, name, value):
    docstring = inspect.getdoc(value)
    assert docstring, f"{module}.{name} has no docstring"
    assert docstring.splitlines()[0].endswith("."), "a one-line summary first"
    if inspect.isfunction(value):
        for section in ("Args:", "Returns:", "Example:"):
            assert section in docstring, f"{module}.{name}: no {section}"
    if inspect.isclass(value):
        for attribute, member in vars(value).items():
            if attribute.startswith("_") or not callable(member):
                continue
            if any(hasattr(base, attribute) for base in KERAS_BASES):
                continue
            assert inspect.getdoc(getattr(value, attribute)), (
                f"{module}.{name}.{attribute} has no docstring"
            )


def test_the_api_table_lists_every_public_name():
    text = API_TABLE.read_text()
    for module, name, _ in PUBLIC_NAMES:
        if module == "keras_stn":
            continue
        assert name in text, f"{module}.{name} is missing from {API_TABLE.name}"
