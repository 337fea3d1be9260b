"""Images for Prefect markdown artifacts: the class balance and a small contact sheet of a
preprocessing run, embedded as ``data:image/png;base64`` markdown images.

Prefect 3.8's UI renders artifact markdown with ``marked`` and sanitises the HTML with
DOMPurify, whose defaults keep ``data:`` URIs on ``<img>``: the images show in the artifact page
with no server or network behind them, in both the default UI and the V2 UI (``/v2``) —
checked in headless Chromium against ``prefect server start`` (tests/test_show.py). They are
kept small: 72 dpi, palettes of 128 (chart) / 256 (contact sheet) colours, one clip per class
(about 50 KB of markdown for 3 classes, 145 KB for CASME II's 7).
"""

from __future__ import annotations

import base64

from mer_prep.plot import figures
from mer_prep.plot.panels import panels
from mer_prep.plot.sample_view import pick_samples, sample_view

__all__ = ["markdown_image", "preprocess_images_markdown", "ARTIFACT_PANELS"]

#: Panels of the artifact's contact sheet, where the recipe stores them.
ARTIFACT_PANELS = frozenset({"apex", "mask", "halves", "flow", "difference"})


def markdown_image(png: bytes, alt: str) -> str:
    """A markdown image with the PNG embedded as a data URI."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def preprocess_images_markdown(store, *, per_class: int = 1, dpi: int = 72) -> str:
    """Markdown: samples per class (bar chart) and a contact sheet of ``per_class`` samples of
    every class (apex with landmarks, mask, halves, flow and difference, as stored)."""
    balance = figures.counts_figure(store.table, store.class_names, subjects=False)
    balance_png = figures.figure_png(balance, dpi=dpi, colours=128)
    out = ["## class balance", "", markdown_image(balance_png, "samples per class"), ""]
    rows = [
        row for label in store.class_names for row in pick_samples(store.table, label, per_class)
    ]
    if rows:
        views = [sample_view(store, row, with_copies=False) for row in rows]
        tiles = [panels(view, curves=False, keys=set(ARTIFACT_PANELS)) for view in views]
        sheet = figures.contact_sheet_figure(views, tiles, title=f"{per_class} clip(s) per class")
        sheet_png = figures.figure_png(sheet, dpi=dpi, colours=256)
        out += [
            "## contact sheet",
            "",
            markdown_image(sheet_png, "contact sheet"),
            "",
            f"`mer-prep show {store.path}` writes the full report.",
        ]
    return "\n".join(out) + "\n"
