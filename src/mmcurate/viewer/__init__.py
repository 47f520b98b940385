"""The sample viewer: one static HTML page of a recipe's kept and dropped documents, for reading what a rule does.

`steps.view(lake, out, ...)` reads the lakehouse and calls `render_view`; this package holds the
DataFrame and HTML code: `sample.py` (Spark: ledger counts, seeded per-rule sample, items with
scores and thumbnails), `thumbnails.py` (Pillow in the executors), `page.py` (escaped HTML, a few
lines of JavaScript for the rule and cluster filters). See docs/viewer.md.

>>> steps.view(lake, "view.html", rule="blur", samples=8)
"""
from __future__ import annotations

import fsspec

from mmcurate.viewer.page import Page, render_page
from mmcurate.viewer.sample import View, ViewerError, ViewInputs, sample_page

__all__ = ["View", "ViewInputs", "ViewerError", "Page", "render_view", "render_page", "sample_page"]


def render_view(inputs: ViewInputs, out: str, view: View = View()) -> str:
    """Sample `inputs` as `view` says and write the page to `out` (a path or fsspec URI); returns `out`."""
    html = render_page(sample_page(inputs, view))
    with fsspec.open(out, "w", encoding="utf-8") as f:
        f.write(html)
    return out
