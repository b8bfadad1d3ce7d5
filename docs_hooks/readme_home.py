"""An MkDocs hook: the site's home page is the README.

The README links to the documentation's sources (`docs/guides/...`) so that
it reads on a code host; on the site the same links are relative to
`docs/`. The home page is rebuilt from the README on every build, so the two
never drift apart, and `mkdocs build --strict` checks every link it holds.
"""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    """The README as the home page, its links made relative to `docs/`."""
    if page.file.src_uri != "index.md":
        return markdown
    text = README.read_text()
    text = text.replace("](docs/", "](")
    return text.replace("](CONTRIBUTING.md)", "](contributing.md)")
