"""A Griffe extension: Keras-style doctest examples as code blocks.

Keras and keras-stn write a docstring's examples as doctests after an
`Example:` line, at the docstring's own indentation, which Griffe's
Google-style parser would render as Markdown text (where `[[0.5, 0.0]]`
reads as a link). This extension fences each doctest block as `pycon` code
before parsing; the docstrings themselves stay as `pytest --doctest-modules`
runs them.
"""

import griffe


def fence_doctests(text: str) -> str:
    """Wrap each run of doctest lines (up to a blank line) in a code fence."""
    lines, fenced, inside = text.splitlines(), [], False
    for line in lines:
        if not inside and line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            fenced.append(f"{indent}```pycon")
            inside = True
        elif inside and not line.strip():
            fenced.append(f"{indent}```")
            inside = False
        fenced.append(line)
    if inside:
        fenced.append(f"{indent}```")
    return "\n".join(fenced)


class KerasExamples(griffe.Extension):
    """Fence the doctests of every docstring before it is parsed."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
