"""report.html as a real browser reads it: headless Chromium's DOM, not our own Markdown renderer's view.

Skipped where no Chromium is installed (``apt-get install chromium`` on Debian): CI's machine has none; the
check runs wherever one is, and ``benchmarks/`` is not needed for it.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import onnx
import pytest

from tests.conftest import GRAPHS
from tests.helpers import cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine")


class _Dom(HTMLParser):
    """Element texts by tag, as the browser's DOM serializes them."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.texts: dict[str, list[str]] = {}
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        self.texts.setdefault(tag, []).append("")
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        for tag in set(self.stack):
            self.texts[tag][-1] += data


def _browser_dom(page: Path) -> _Dom:
    assert CHROMIUM is not None
    dumped = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    dom = _Dom()
    dom.feed(dumped)
    return dom


def test_report_html_renders_every_fact_as_written(tmp_path: Path) -> None:
    model = onnx.load(GRAPHS / "ln_canonical.onnx")
    hostile = "out*put_1_ <b>x</b>"
    model.graph.output[0].name = hostile
    model.graph.node[-1].output[0] = hostile
    source = tmp_path / "my*model_v2_.onnx"
    onnx.save(model, source)
    out = tmp_path / "run"
    result = cli("run", source, "-o", out, "--iters", "12", "--warmup", "1", "--opt-level", "disable")
    assert result.code == 0, result.stderr
    dom = _browser_dom(out / "report.html")
    assert [t.strip() for t in dom.texts["h2"]] == ["Decision", "Model", "Parity", "Latency"]
    assert any(f"{source}" in t for t in dom.texts["h1"])  # no `*` or `_` lost to emphasis
    assert "em" not in dom.texts and "b" not in dom.texts  # model text never became markup
    assert any(hostile in cell for cell in dom.texts["td"])  # the output name, in its table cell, as written
    items = [t.strip() for t in dom.texts["li"]]
    assert sum(i.startswith(("Parity:", "Speed", "Ship:")) for i in items) >= 3  # each decision its own item
    facts = [i for i in items if i.startswith(("Inputs (", "Warm-up", "Memory:"))]
    assert len(facts) == 3  # separate lines stay separate, not one merged paragraph
    assert len(dom.images) == 1 and dom.images[0].startswith("data:image/png;base64,")  # chart embedded
