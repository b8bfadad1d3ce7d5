"""Checks of the example functions' arguments, with Keras-style messages."""

from collections.abc import Collection


def check_choice(value: str, name: str, choices: Collection[str]) -> None:
    """Raise a `ValueError` naming `name` where `value` is not a choice.

    Args:
        value: the argument's value.
        name: the argument's name.
        choices: the values it may take, in the order the message lists
            them.

    Raises:
        ValueError: if `value` is not among `choices`.

    Example:

    >>> check_choice("cnn", "model", ("fcn", "cnn"))
    >>> try:
    ...     check_choice("rnn", "model", ("fcn", "cnn"))
    ... except ValueError as error:
    ...     print(str(error).split(". ")[1:])
    ['Expected one of fcn, cnn', "Received model='rnn'"]
    """
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of "
            f"{', '.join(choices)}. Received {name}={value!r}"
        )
