"""One store version written in this process, without Prefect or Dask: for notebooks, tests and
benches (``mer-prep run`` is the same steps fanned out over a cluster)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mer_prep.pipeline import batch
from mer_prep.pipeline.planning import plan_version, scan_failures
from mer_prep.recipes import Recipe, load_recipe
from mer_prep.store.repo import Location
from mer_prep.store.writer import VersionPlan, VersionWriter, existing_version


def commit_version(dataset: str, root: str | os.PathLike | Mapping[str, str | os.PathLike],
                   recipe: str | Recipe, store: Location, *, labels: str = "native",
                   **options) -> tuple[VersionPlan, VersionWriter | None]:
    """Scan ``dataset`` under ``root``, process every sample to compute in one batch and commit
    the version into ``store`` (nothing when it is up to date). Returns the plan and the writer
    (None when up to date): ``writer.version_id`` is what was committed, ``writer.reuse_summary()``
    what was recomputed. Failed samples are recorded as in a flow run."""
    recipe = load_recipe(recipe) if isinstance(recipe, str) else recipe
    plan = plan_version(dataset, root, recipe, store, labels=labels, **options)
    if existing_version(plan.location, plan.version_id):
        return plan, None
    writer = VersionWriter.begin(plan)
    try:
        result = batch.process_batch(batch.BatchJob(
            writer.fork(), batch.sample_jobs(plan, writer.reused), recipe, plan.arrays,
            plan.class_names))
        run = batch.combine_batches([result], plan.n_rows, writer.reused)
        writer.finish(run.forks, run.rows, scan_failures(plan) + run.failures)
    except BaseException:
        writer.abort()
        raise
    return plan, writer
