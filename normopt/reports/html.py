"""``report.html``: the Markdown report as one self-contained page (chart embedded, no external files).

Rendered with markdown-it-py (CommonMark plus tables), which rich already depends on, with raw HTML off:
whatever a model or a path puts in the report (output names, refusal reasons) is text, never markup.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } code { background: #f3f3f3; padding: 0 0.2em; }
"""


_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>|&]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def md_text(text: object) -> str:
    """``text`` from a model or a path, escaped for Markdown (tables included): it renders as itself.

    Backslash escapes (CommonMark) for the characters that start markup, raw HTML, table cells or entities.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def to_html(markdown: str, title: str, images: dict[str, Path]) -> str:
    """A standalone HTML page for ``markdown``; each image named in ``images`` is embedded as a data URI."""
    from markdown_it import MarkdownIt

    for name, path in images.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        markdown = markdown.replace(f"]({name})", f"](data:image/png;base64,{data})")
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}</body></html>\n"
    )
