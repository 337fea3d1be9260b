"""What a store version is before it is written: its plan, its id, and what ``main`` holds.

``VersionPlan`` is everything that determines one version, known before any pixel is processed
(``mer_prep.pipeline.planning.plan_version`` makes it); ``make_version_id`` and
``incomplete_version_id`` name versions; ``existing_version`` / ``current_version`` say what a
store already holds; ``reusable_rows`` says which rows of ``main``'s version a refresh may keep.
``mer_prep.store.writer`` writes what a plan describes (and re-exports these names).

**Version ids and failures that may pass.** A version id is derived from the inputs (recipe
hash, input fingerprint, code version), so one id must always name the same contents. A sample
failure is *permanent* when it follows from the fingerprinted inputs (a corrupt or unreadable-
at-plan-time file, no face, a bad annotation: the same inputs fail the same way everywhere) and
*transient* when it may pass (an I/O error or timeout on a file that was readable when the run
was planned, inputs that changed during the run); workers retry those a couple of times first.
A version that still holds transient failures is not the inputs' version: the writer commits and
publishes it (the ``ok`` samples are real work and readers may use them) under the id
``incomplete_version_id`` derives from the input id *and* the transiently failed rows, with
``complete: false`` in its attributes, and never under the input id. ``existing_version(plan
id)`` therefore does not answer "up to date", and the next run re-processes exactly the
transiently failed samples through the refresh path (the other rows are reused as they are)
and, when they pass, commits the version under the input id. So two stores built from the same
inputs, one of which met a transient error, end with the same id and the same table and arrays.
Tagging the incomplete version with the input id and moving that tag later is not possible
(Icechunk tags are immutable, and a deleted tag name can never be created again), and would
make the id name two contents over time; a digest of the outcome in the incomplete id keeps
every id to one content.

**Refresh.** When ``main`` holds a version of the same dataset, recipe hash, code version,
label scheme, classes, array layout and the same rows (sample ids in the same order),
``reusable_rows`` lists every row whose fingerprint is unchanged (and was processed): the
writer then starts from ``main``'s snapshot and those rows keep referencing the previous
version's chunks (Icechunk shares them; nothing is copied).

**Action units.** Every version stores a boolean ``aus`` array (row x AU) over
``VersionPlan.au_list``: the cross-dataset set ``au_set("cross12")`` first, in its order (so the
first 12 columns of any two stores mean the same AUs), then every other AU the samples code,
ascending. The list is a function of the samples' AU strings, which their fingerprints cover:
neither a recipe nor a label scheme chooses it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import icechunk as ic
import numpy as np
import zarr
from pydantic import ValidationError

from mer_prep.datasets.aus import au_matrix
from mer_prep.labels import au_set
from mer_prep.recipes import ArraySpec, Recipe
from mer_prep.sample import Problem, Sample
from mer_prep.store.gc import remove_abandoned_branches
from mer_prep.store.layout import (  # noqa: F401 - PERMANENT re-exported
    MAIN,
    PERMANENT,
    TABLE_GROUP,
    TRANSIENT,
    VersionAttrs,
)
from mer_prep.store.long_layout import is_long_video_attrs
from mer_prep.store.nodes import array_at, group_at, read_values
from mer_prep.store.repo import (
    Location,
    StoreLocation,
    open_repository,
    store_exists,
)
from mer_prep.store.table import table_columns
from mer_prep.version import code_version

#: the AU set every store's ``au_list`` starts with
BASE_AU_SET = "cross12"

log = logging.getLogger(__name__)


def make_version_id(recipe_hash: str, input_fingerprint: str, code: str) -> str:
    """``v-`` + 16 hex digits of sha256(recipe hash, input fingerprint, code version)."""
    blob = f"{recipe_hash}|{input_fingerprint}|{code}".encode()
    return "v-" + hashlib.sha256(blob).hexdigest()[:16]


def incomplete_version_id(version_id: str, rows: list[dict]) -> str:
    """The id of a version of ``version_id``'s inputs in which some rows failed transiently:
    ``v-`` + 16 hex digits over the input id and those rows (sample id, error), so that it
    names exactly one content and never collides with the input id."""
    outcome = sorted(
        (r["sample_id"], r["error"])
        for r in rows
        if r["status"] != "ok" and r.get("failure_kind") == TRANSIENT
    )
    blob = f"{version_id}|incomplete|{outcome!r}".encode()
    return "v-" + hashlib.sha256(blob).hexdigest()[:16]


def store_au_list(samples: list[Sample]) -> list[int]:
    """The AU columns of a store of ``samples``: ``cross12`` in its order, then every other AU
    the samples code (``Sample.aus``), ascending."""
    base = list(au_set(BASE_AU_SET))
    return base + sorted({au for sample in samples for au in sample.aus} - set(base))


@dataclass
class VersionPlan:
    """Everything that determines one store version, known before any pixel is processed."""

    location: StoreLocation
    dataset: str
    labels: str
    class_names: list[str]
    recipe: Recipe
    samples: list[Sample]
    fingerprints: list[str]
    problems: list[Problem]
    input_fingerprint: str
    code_version: str = field(default_factory=code_version)
    #: samples with a frame (or video) that could not be read when they were fingerprinted
    unreadable: frozenset[str] = frozenset()
    #: the scan's annotation corrections (``CorrectionRecord``), files named relative to the
    #: dataset root; recorded in the store's ``corrections`` attribute
    corrections: list = field(default_factory=list)

    @property
    def version_id(self) -> str:
        return make_version_id(self.recipe.hash, self.input_fingerprint, self.code_version)

    @property
    def n_rows(self) -> int:
        """Store rows: each sample, followed by its augmented copies when the recipe makes any."""
        return len(self.samples) * self.recipe.rows_per_sample

    @property
    def arrays(self) -> dict[str, ArraySpec]:
        """The recipe's arrays, per sample."""
        return self.recipe.array_specs()

    @property
    def au_list(self) -> list[int]:
        """The AU numbers of the store's ``aus`` columns (``store_au_list``)."""
        return store_au_list(self.samples)

    def au_rows(self, rows: list[dict]) -> np.ndarray:
        """(len(rows), len(au_list)) bool: the AUs of each table row's sample (``Sample.aus``;
        an augmented copy takes its parent's), or of its ``action_units`` text when the row
        names no sample of the plan."""
        samples = {sample.sample_id: sample for sample in self.samples}
        return au_matrix(
            [
                samples.get(row["aug_parent"] or row["sample_id"], row["action_units"])
                for row in rows
            ],
            self.au_list,
        )

    def stored_layout(self) -> dict[str, dict]:
        """The store's JSON description of every array, with the leading sample axis."""
        return {name: spec.stored(self.n_rows) for name, spec in self.arrays.items()}


def existing_version(location: Location, version_id: str) -> str | None:
    """Snapshot id of ``version_id`` when the store already holds it complete, else None.

    Found by its tag; or on ``main`` without one, where a run killed between moving ``main``
    and tagging left it (the tag is added here). A version recording transient failures never
    answers (see the module docstring), so a re-run retries them. Like ``VersionWriter.begin``
    it deletes the scratch branches of runs that are provably dead.
    """
    if not store_exists(location):
        return None
    repo = open_repository(location)
    remove_abandoned_branches(repo)
    if version_id in repo.list_tags():
        snapshot = repo.lookup_tag(version_id)
        tagged = stored_version(repo, snapshot)
        return snapshot if tagged is None or tagged[1] else None
    main = repo.lookup_branch(MAIN)
    if stored_version(repo, main) != (version_id, True):
        return None
    snapshot = next(
        (
            info.id
            for info in repo.ancestry(snapshot_id=main)
            if (info.metadata or {}).get("version_id") == version_id
            and "split" not in (info.metadata or {})
        ),
        main,
    )
    try:
        repo.create_tag(version_id, snapshot)
    except ic.IcechunkError as error:  # a tag deleted by `mer-prep gc --tags` stays deleted
        log.warning("could not tag %s on %s: %s", version_id, location, error)
    return snapshot


def current_version(location: Location) -> str | None:
    """The version id readers of ``location`` see (``main``), or None when it holds none."""
    try:
        if not store_exists(location):
            return None
        repo = open_repository(location)
        stored = stored_version(repo, repo.lookup_branch(MAIN))
        return None if stored is None else stored[0]
    except (ic.IcechunkError, OSError):
        return None


def stored_version(repo: ic.Repository, snapshot: str) -> tuple[str, bool] | None:
    """(version id, complete) of the version at ``snapshot``, a clip or a long-video one
    (``mer_prep.store.long_layout``); None when it holds none."""
    attrs = root_attrs(repo, snapshot)
    if is_long_video_attrs(attrs):
        failures = attrs.get("failures") or []
        complete = attrs.get("complete") is not False and not any(
            f.get("kind") == TRANSIENT for f in failures
        )
        return str(attrs.get("version_id")), complete
    typed = version_attrs(repo, snapshot)
    return None if typed is None else (typed.version_id, typed.is_complete)


def root_attrs(repo: ic.Repository, snapshot: str) -> dict:
    """The root attributes of the version at ``snapshot`` ({} for none or a foreign layout)."""
    try:
        return dict(
            zarr.open_group(repo.readonly_session(snapshot_id=snapshot).store, mode="r").attrs
        )
    except Exception:  # noqa: BLE001 - an empty repository or a foreign layout: no version
        return {}


def version_attrs(repo: ic.Repository, snapshot: str) -> VersionAttrs | None:
    """The typed root attributes of the version at ``snapshot``; None for none, a foreign
    layout, or attributes that are not a version's."""
    attrs = root_attrs(repo, snapshot)
    if "version_id" not in attrs:
        return None
    try:
        return VersionAttrs.from_attrs(attrs)
    except ValidationError:
        return None


def reusable_rows(
    repo: ic.Repository, base: str, plan: VersionPlan
) -> tuple[dict[int, dict], str] | None:
    """Rows of ``main``'s version at ``base`` that ``plan`` may keep, and that version's id.

    None unless the previous version has the same dataset, recipe hash, code version, label
    scheme, classes, array layout and sample ids in the same row order; then every row whose
    sample is unchanged (same fingerprint) and was processed is reusable (with its augmented
    copies). Rows of the previous table are returned as records ready for ``finish``.
    """
    attrs = version_attrs(repo, base)
    if attrs is None:
        return None
    same = (
        attrs.dataset == plan.dataset
        and attrs.recipe.hash == plan.recipe.hash
        and attrs.code_version == plan.code_version
        and attrs.labels == plan.labels
        and attrs.class_names == plan.class_names
        and attrs.to_attrs()["arrays"] == plan.stored_layout()
        and attrs.n_samples == plan.n_rows
    )
    if not same:
        return None
    root = zarr.open_group(repo.readonly_session(snapshot_id=base).store, mode="r")
    table = group_at(root, TABLE_GROUP)
    missing = [name for name in table_columns() if name not in table]
    if set(missing) - {"failure_kind"}:  # a column added since: older stores lack it
        return None
    columns = {
        name: read_values(array_at(table, name)) for name in table_columns() if name in table
    }
    if missing:
        columns["failure_kind"] = np.full(len(columns["sample_id"]), "", dtype=object)
    stride = plan.recipe.rows_per_sample
    expected = [sample.sample_id for sample in plan.samples]
    if list(columns["sample_id"][::stride]) != expected:
        return None
    reused: dict[int, dict] = {}
    for i, fingerprint in enumerate(plan.fingerprints):
        rows = range(i * stride, (i + 1) * stride)
        if all(
            columns["fingerprint"][r] == fingerprint and columns["status"][r] == "ok" for r in rows
        ):
            for r in rows:
                reused[r] = {name: _python(values[r]) for name, values in columns.items()}
    return reused, attrs.version_id


def _python(value):
    """A numpy scalar as the Python value ``sample_row`` would have produced."""
    return value.item() if isinstance(value, np.generic) else value
