"""The reports' pages and tables: one table written as Markdown or as HTML, the HTML page shell with its one
style sheet, and the number format the reports share.

Every report goes through it: the comparison (``comparison.md`` and ``comparison.html``), Table 6 of the
retraining, the reduced experiments' summary, the fidelity study's tables and the HTML report of runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from plotly.offline import get_plotlyjs

MISSING = "—"  # the cell of a number that is not there (NaN, or no value to show)

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table.table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
table.table th, table.table td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: left; }
table.table .number { text-align: right; }
.networks { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; max-width: 420px; } figcaption { font-size: 0.85em; } code { word-break: break-all; }
p.note, ul.notes { color: #555; font-size: 0.9em; }
"""


def formatted(value: object, spec: str = "{}") -> str:
    """``value`` formatted by ``spec`` (``"{:.4f}"``, ``"{:.0%}"``); :data:`MISSING` for a float that is NaN
    or infinite."""
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return MISSING
    return spec.format(value)


@dataclass(frozen=True)
class Table:
    """A table of a report, written as Markdown (:meth:`markdown`) or HTML (:meth:`html`).

    :param header: the column titles
    :param rows: the cells, each shown as ``str(cell)``
    :param right: the right-aligned (number) columns: every column from this index on, or a flag per column
    """

    header: Sequence[object]
    rows: Sequence[Sequence[object]]
    right: int | Sequence[bool] = 1

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, spec: str) -> Table:
        """A DataFrame's columns and rows: floats formatted by ``spec`` (:func:`formatted`), its number
        columns (not booleans) right-aligned."""
        right = [is_numeric_dtype(dtype) and not is_bool_dtype(dtype) for dtype in frame.dtypes]
        rows = [
            [formatted(value, spec) if isinstance(value, float | np.floating) else value for value in row]
            for row in frame.itertuples(index=False)
        ]
        return cls(list(frame.columns), rows, right)

    def right_aligned(self) -> list[bool]:
        """Per column, whether it is right-aligned."""
        if isinstance(self.right, int):
            return [index >= self.right for index in range(len(self.header))]
        return list(self.right)

    def markdown(self) -> str:
        """A Markdown table (``|`` in a cell escaped), without a final newline."""
        align = ["---:" if right else "---" for right in self.right_aligned()]
        lines = [_markdown_row(self.header), "| " + " | ".join(align) + " |"]
        lines += [_markdown_row(row) for row in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        """An HTML table of :data:`STYLE`'s ``table`` class, its right-aligned cells of class ``number``."""
        classes = [' class="number"' if right else "" for right in self.right_aligned()]

        def cells(tag: str, row: Sequence[object]) -> str:
            return "".join(
                f"<{tag}{cls}>{escape(str(cell))}</{tag}>" for cls, cell in zip(classes, row, strict=True)
            )

        head = f"<thead><tr>{cells('th', self.header)}</tr></thead>"
        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        return f'<table class="table">{head}<tbody>{body}</tbody></table>'


def _markdown_row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def figure_html(figure: go.Figure, name: str) -> str:
    """A plotly figure as a ``<div id="fig-NAME">`` of a page whose ``<head>`` holds plotly.js."""
    return pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}")


def html_sections(sections: Mapping[str, tuple[str, str]]) -> str:
    """The list of contents, then each section: ``{id: (title, HTML)}`` in order."""
    contents = "".join(
        f'<li><a href="#{key}">{escape(title)}</a></li>' for key, (title, _) in sections.items()
    )
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{html}</section>'
        for key, (title, html) in sections.items()
    )
    return f"<ul>{contents}</ul>{body}"


def html_page(title: str, body: str) -> str:
    """One self-contained HTML document: :data:`STYLE` and plotly.js inline, so that it works offline."""
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>{body}</body></html>"
    )
