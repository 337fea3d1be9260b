"""``store.plot``: matplotlib figures of one store version (what ``FeatureStore.plot`` returns).

store = open_store("stores/casme2/msres3d")
store.plot.sample(0)                       # every panel of table row 0 (or a sample id)
store.plot.contact_sheet(label="surprise") # one tile (a row of panels) per sample
store.plot.flow("casme2/sub01/EP02_01f")   # flow of every stored frame, with the colour key
store.plot.classes()                       # samples per class and per subject
store.plot.split("loso")                   # test rows per fold and class
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mer_prep.errors import InvalidArgumentError, UnknownNameError
from mer_prep.plot import figures
from mer_prep.plot.panels import panels
from mer_prep.plot.sample_view import SampleView, pick_samples, sample_view

__all__ = ["StorePlots", "CONTACT_SHEET_PANELS", "subject_leaks"]

#: Panels of a contact sheet tile (the sample figure shows every panel).
CONTACT_SHEET_PANELS = frozenset(
    {"onset", "apex", "mask", "halves", "flow", "strain", "magnitude", "difference"}
)


def subject_leaks(split, table) -> list[str]:
    """Subjects whose rows sit in more than one test fold (and so on both sides of a fold)."""
    test = np.asarray(split.test_fold)
    used = test >= 0
    frame = table.loc[used, ["subject"]].assign(fold=test[used])
    folds = frame.groupby("subject")["fold"].nunique()
    return sorted(folds[folds > 1].index)


class StorePlots:
    """Figures of one ``FeatureStore`` version. Samples are given as a ``table`` row number or a
    sample id; every method returns a ``matplotlib.figure.Figure`` (Agg canvas)."""

    def __init__(self, store) -> None:
        self.store = store

    def row(self, sample: int | str) -> int:
        """The ``table`` row of a row number or a sample id."""
        table = self.store.table
        if isinstance(sample, (int, np.integer)):
            if not 0 <= int(sample) < len(table):
                raise InvalidArgumentError(
                    f"store {self.store.path} has rows 0..{len(table) - 1}, not {sample}"
                )
            return int(sample)
        hits = np.flatnonzero(table["sample_id"].to_numpy(dtype=str) == str(sample))
        if not hits.size:
            raise UnknownNameError(f"store {self.store.path} has no processed sample {sample!r}")
        return int(hits[0])

    def view(self, sample: int | str, *, with_copies: bool = True) -> SampleView:
        """The sample's stored arrays and positions (what the panels are drawn from)."""
        return sample_view(self.store, self.row(sample), with_copies=with_copies)

    def sample(self, sample: int | str) -> figures.Figure:
        """Every panel the recipe allows for one sample, the frame strip and the curves."""
        view = self.view(sample)
        return figures.sample_figure(view, panels(view))

    def contact_sheet(
        self, label: str | None = None, samples: Sequence[int | str] | None = None, n: int = 4
    ) -> figures.Figure:
        """One tile (a row of panels) per sample: ``samples`` as given, else up to ``n``
        originals of class ``label`` (every class when None), subjects taken in turn."""
        if samples is None:
            if label is not None and label not in set(self.store.table["label_name"]):
                present = sorted(set(self.store.table["label_name"]))
                raise UnknownNameError(
                    f"store {self.store.path} has no samples of class "
                    f"{label!r} (classes: {present})"
                )
            rows = pick_samples(self.store.table, label, n)
        else:
            rows = [self.row(s) for s in samples]
        views = [self.view(r, with_copies=False) for r in rows]
        tiles = [panels(v, curves=False, keys=set(CONTACT_SHEET_PANELS)) for v in views]
        title = f"{self.store.info.dataset} / {self.store.info.recipe.name}" + (
            f": {label}" if label else ""
        )
        return figures.contact_sheet_figure(views, tiles, title)

    def flow(self, sample: int | str) -> figures.Figure:
        """Flow (colour, magnitude, strain) of every stored frame of one sample."""
        return figures.flow_figure(self.view(sample, with_copies=False))

    def classes(self, subjects: bool = True) -> figures.Figure:
        """Samples per class (augmented copies stacked on top) and clips per subject."""
        return figures.counts_figure(self.store.table, self.store.class_names, subjects=subjects)

    def split(self, name: str = "loso") -> figures.Figure:
        """Test rows per fold and class of a stored split (or ``loso`` / ``megc2019``); a
        leaky one (recorded so, or a subject in two folds) is titled in red."""
        split = self.store.split(name)
        leaks = subject_leaks(split, self.store.table)
        stored = self.store.split_info(name)
        leaky = bool(split.leaky or (stored and stored.leaky) or leaks)
        note = f"{len(leaks)} subjects in several folds" if leaks else "sample-level"
        return figures.split_figure(
            name,
            split,
            self.store.table,
            self.store.class_names,
            leaky=leaky,
            note=note if leaky else "",
        )

    def __repr__(self) -> str:
        return f"StorePlots({self.store.path!r})"
