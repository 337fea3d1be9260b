"""Looking at stores and runs: matplotlib figures (Agg only), the HTML report of ``mer-prep
show``, the notebook summary of a store, images for Prefect artifacts.

One concept per module: ``colour`` (arrays to RGB: flow colour, heat maps, landmarks, masks),
``panels`` (one stored sample as the pictures a person checks), ``figures`` (matplotlib
figures), ``store_plots`` (:class:`StorePlots`, ``store.plot``), ``runs`` (:class:`RunPlots`,
``run.plot``, over a typed protocol of a run record), ``report`` (:func:`write_report`, the
self-contained HTML report), ``notebook`` (``FeatureStore._repr_html_``), ``artifact``
(markdown images for Prefect).

Layer: with the store (it reads ``FeatureStore`` s and is reached from ``FeatureStore.plot``);
it imports store, evaluation, recipes, face and motion, never the trainers or the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mer_prep.lazy import lazy_getattr

if TYPE_CHECKING:
    from mer_prep.plot.colour import colour_wheel, flow_hue_deg, flow_to_rgb
    from mer_prep.plot.figures import figure_png
    from mer_prep.plot.report import Report, write_report
    from mer_prep.plot.runs import RunLike, RunPlots, leaderboard, run_markdown
    from mer_prep.plot.store_plots import StorePlots

# Imported on first use: ``FeatureStore._repr_html_`` (``notebook``) must not pay for matplotlib.
_WHERE = {
    "colour_wheel": "colour",
    "flow_hue_deg": "colour",
    "flow_to_rgb": "colour",
    "figure_png": "figures",
    "Report": "report",
    "write_report": "report",
    "RunLike": "runs",
    "RunPlots": "runs",
    "leaderboard": "runs",
    "run_markdown": "runs",
    "StorePlots": "store_plots",
}

__all__ = [
    "Report",
    "RunLike",
    "RunPlots",
    "StorePlots",
    "colour_wheel",
    "figure_png",
    "flow_hue_deg",
    "flow_to_rgb",
    "leaderboard",
    "run_markdown",
    "write_report",
]

__getattr__ = lazy_getattr(__name__, _WHERE)
