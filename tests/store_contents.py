"""What readers of a store see, compared whole; and a version written in this process but not
yet finished (what a live or killed run leaves). Shared by the fault, interrupt, gc, request and
security tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mer_prep.recipes import Recipe, load_recipe
from mer_prep.store import open_store

if TYPE_CHECKING:
    from mer_prep.store.writer import VersionWriter

#: The small CASME II look-alike most flow and store tests write (2 subjects x 2 clips, 12 frames).
SMALL_CASME2 = {
    "n_subjects": 2,
    "clips_per_subject": 2,
    "seed": 11,
    "n_frames": 12,
    "size": (240, 320),
}

Contents = tuple[str, pd.DataFrame, dict[str, np.ndarray]]


def contents(store_path, version: str | None = None) -> Contents:
    """What readers see of ``version`` (default: the visible one): version id, the whole table
    and every array (failed rows included)."""
    store = open_store(store_path, version)
    return (
        store.version_id,
        store.table_all,
        {name: store.group[name][:] for name in store.array_names},
    )


def assert_same(a: Contents, b: Contents) -> None:
    """Two ``contents`` are equal: version id, table, array names, dtypes and values."""
    (id_a, table_a, arrays_a), (id_b, table_b, arrays_b) = a, b
    assert id_a == id_b
    pd.testing.assert_frame_equal(table_a, table_b)
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def begin_version(
    root: Path, store_path: Path, recipe: Recipe | str, dataset: str = "casme2"
) -> tuple[VersionWriter, Callable[[], str]]:
    """A version begun and all its samples written in one batch through the library, not yet
    finished: ``(writer, finish)``, where ``finish()`` commits it (scan failures included)."""
    from mer_prep.pipeline.batch import BatchJob, combine_batches, process_batch, sample_jobs
    from mer_prep.pipeline.planning import plan_version, scan_failures
    from mer_prep.store.writer import VersionWriter

    recipe = load_recipe(recipe) if isinstance(recipe, str) else recipe
    plan = plan_version(dataset, root, recipe, store_path)
    writer = VersionWriter.begin(plan)
    result = process_batch(
        BatchJob(
            writer.fork(), sample_jobs(plan, writer.reused), recipe, plan.arrays, plan.class_names
        )
    )
    run = combine_batches([result], plan.n_rows, writer.reused)
    return writer, lambda: writer.finish(run.forks, run.rows, scan_failures(plan) + run.failures)
