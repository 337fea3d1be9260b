"""The compact HTML a store shows in Jupyter (``FeatureStore._repr_html_``), as xarray does:
dataset, recipe, version, arrays with dims and shapes, class counts. Text only: no figure, no
matplotlib import, nothing read beyond the attributes and the sample table."""

from __future__ import annotations

import html

__all__ = ["store_html"]

_STYLE = (
    "<style>.mer-prep-store table{border-collapse:collapse;font-size:12px}"
    ".mer-prep-store td,.mer-prep-store th{border:1px solid #ddd;padding:1px 6px;"
    "text-align:left}.mer-prep-store .muted{color:#777}</style>"
)


def _esc(value) -> str:
    return html.escape(str(value))


def store_html(store) -> str:
    """A small HTML summary of one store version."""
    info = store.info
    table = store.table
    copies = (table["aug_parent"].astype(str) != "") if "aug_parent" in table else None
    counts = table["label_name"].astype(str).value_counts()
    classes = ", ".join(
        f"{_esc(name)} {int(counts.get(name, 0))}"
        for name in store.class_names
        if name in counts.index
    )
    arrays = "".join(
        f"<tr><td><code>{_esc(name)}</code></td><td>({_esc(', '.join(spec.dims))})</td>"
        f"<td>{_esc(' × '.join(str(d) for d in spec.shape))}</td>"
        f"<td>{_esc(spec.dtype)}</td></tr>"
        for name, spec in info.arrays.items()
    )
    n_failed = len(info.failures)
    aug = f", {int(copies.sum())} augmented copies" if copies is not None and copies.any() else ""
    splits = ", ".join(store.split_names) or "none stored (loso on demand)"
    return (
        f"{_STYLE}<div class=mer-prep-store><b>FeatureStore</b> <code>{_esc(store.path)}"
        f"</code><table>"
        f"<tr><th>dataset</th><td colspan=3>{_esc(info.dataset)} "
        f"<span class=muted>labels {_esc(info.labels)}</span></td></tr>"
        f"<tr><th>recipe</th><td colspan=3>{_esc(info.recipe.name)} "
        f"<span class=muted>{_esc(info.recipe.paper)}</span></td></tr>"
        f"<tr><th>version</th><td colspan=3><code>{_esc(store.version_id)}</code> "
        f"<span class=muted>{_esc(info.created)}</span></td></tr>"
        f"<tr><th>samples</th><td colspan=3>{len(table)} processed{aug}, {n_failed} failed, "
        f"{table['subject'].nunique()} subjects</td></tr>"
        f"<tr><th>classes</th><td colspan=3>{classes}</td></tr>"
        f"<tr><th>splits</th><td colspan=3>{_esc(splits)}</td></tr>"
        f"<tr><th colspan=4>arrays</th></tr>{arrays}</table>"
        f"<span class=muted>store.plot.sample(0), store.plot.contact_sheet(), "
        f"mer-prep show {_esc(store.path)}</span></div>"
    )
