"""A comparison's two files: ``comparison.md`` and ``comparison.html``."""

from __future__ import annotations

from pathlib import Path

from sb3_nas.analysis.comparison.html import render_html
from sb3_nas.analysis.comparison.markdown import render_markdown
from sb3_nas.analysis.comparison.scoring import Comparison
from sb3_nas.experiment.files import replace_atomically

MARKDOWN_FILE, HTML_FILE = "comparison.md", "comparison.html"


def write_comparison(comparison: Comparison, out: str | Path) -> tuple[Path, Path]:
    """Write ``out/comparison.md`` and ``out/comparison.html``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in ((MARKDOWN_FILE, render_markdown(comparison)), (HTML_FILE, render_html(comparison))):
        write = lambda partial, text=text: partial.write_text(text, encoding="utf-8")  # noqa: E731
        written.append(replace_atomically(out / name, write))
    return written[0], written[1]
