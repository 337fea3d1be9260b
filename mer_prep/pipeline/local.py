"""One store version written in this process, without Prefect or Dask: for notebooks, tests and
benches (``mer-prep run`` is the same sequence, ``pipeline.sequence``, with its batches fanned
out over a cluster)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mer_prep.pipeline.request import PreprocessRequest
from mer_prep.pipeline.sequence import InProcess, make_version
from mer_prep.recipes import Recipe
from mer_prep.store.repo import Location
from mer_prep.store.writer import VersionPlan, VersionWriter


def commit_version(
    dataset: str,
    root: str | os.PathLike | Mapping[str, str | os.PathLike],
    recipe: str | Recipe,
    store: Location,
    *,
    labels: str = PreprocessRequest.default("labels"),
    **options,
) -> tuple[VersionPlan, VersionWriter | None]:
    """Scan ``dataset`` under ``root``, process every sample to compute in one batch and commit
    the version into ``store`` (nothing when it is up to date or no sample was found). Returns
    the plan and the writer (None when nothing was committed): ``writer.version_id`` is what was
    committed, ``writer.reuse_summary()`` what was recomputed. Failed samples are recorded as in
    a flow run. ``options``: the dataset adapter's."""
    return commit_request(
        PreprocessRequest.from_arguments(
            dataset, root, recipe, store, labels=labels, options=options
        )
    )


def commit_request(request: PreprocessRequest) -> tuple[VersionPlan, VersionWriter | None]:
    """``commit_version`` of a built request (its ``n_workers``, ``progress`` and
    ``dask_address`` play no part in this process)."""
    run = make_version(request, InProcess())
    return run.plan, run.writer
