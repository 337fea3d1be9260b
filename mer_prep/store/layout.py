"""The store format in one place: the names of its branches and groups, the default store path,
and the typed root attributes of a version (``VersionAttrs``).

``storage_schemas/feature_store.v1.json`` is the declared contract (JSON Schema plus its
``x-zarr`` rules, checked by ``mer_prep.store.schema``); this module is the code's side of it.
The writer dumps a ``VersionAttrs`` as the root group's attributes (``to_attrs``) and the reader
loads them back (``VersionAttrs.from_attrs``; ``FeatureStore.info``). A test checks the model
against the schema in both directions (tests/test_store_layout.py): every attribute the model
writes is declared there, and the required ones agree. Attributes a version written before
them lacks (``au_list``, ``corrections``, ``complete``, ``reuse``, the digests...) are optional
here, so older stores keep reading.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

#: the branch readers see: every version is committed to it, each tagged with its version id
MAIN = "main"
#: the branch that holds training run records (``mer_prep.train.runs_store``), and the group
#: on it with one group per run
RUNS_BRANCH = "runs"
RUNS_GROUP = "runs"
#: the group of one 1-chunk array per sample table column (the schema's ``x-zarr.table_group``)
TABLE_GROUP = "samples"
#: the row x AU bool array (the schema's ``x-zarr.aus_array.name``)
AUS_ARRAY = "aus"
AUS_DIMS = ("sample", "au")
#: the group holding one group per stored split (``splits/<name>``)
SPLITS_GROUP = "splits"
#: where ``mer-prep preprocess`` writes a store when neither the CLI nor the config names one;
#: ``{dataset}`` and ``{recipe}`` are filled in per run, relative to the working directory
DEFAULT_STORE_TEMPLATE = "stores/{dataset}/{recipe}"

SCHEMA_NAME = "mer-prep/feature-store"
SCHEMA_VERSION = 1
SPLIT_SCHEMA_NAME = "mer-prep/split"
#: a failure that may pass on a re-run, and one that follows from the inputs (``versions``)
TRANSIENT = "transient"
PERMANENT = "permanent"


class _Attrs(BaseModel):
    """Attributes as stored: frozen; keys a newer writer added are kept (``extra="allow"``) so
    that reading never drops what a version holds."""

    model_config = ConfigDict(frozen=True, extra="allow")


# A field named ``schema`` would shadow BaseModel's (deprecated) ``schema`` method: the models
# call it ``schema_`` and store it under the alias ``schema``.
_SCHEMA_ALIASED = ConfigDict(
    frozen=True,
    extra="allow",
    populate_by_name=True,
    alias_generator=lambda name: "schema" if name == "schema_" else name,
)


class RecipeAttrs(_Attrs):
    """The recipe a version was made with: name, 16-hex hash, paper, all its parameters."""

    name: str
    hash: str
    paper: str = ""
    parameters: dict[str, Any]


class ArrayLayout(_Attrs):
    """One stored array: dim names (``sample`` first), shape (rows first), numpy dtype name."""

    dims: list[str]
    shape: list[int]
    dtype: str


class FailureAttrs(_Attrs):
    """One failed sample as recorded (``mer_prep.sample.Failure.to_dict``); ``kind`` is
    ``permanent`` or ``transient`` (absent in versions written before the distinction, which
    count as permanent, as the writer treats them)."""

    sample_id: str
    file: str
    stage: str
    message: str
    kind: str = PERMANENT


class CorrectionAttrs(_Attrs):
    """One annotation correction of the scan as recorded
    (``mer_prep.datasets.corrections.CorrectionRecord.to_dict``): ``status`` is ``applied``,
    ``already`` or ``unused``; ``file`` relative to the dataset root; ``where`` the sheet row."""

    sample: str
    field: str
    old: Any
    new: Any
    status: str
    reason: str = ""
    file: str = ""
    where: str = ""


class ReuseAttrs(_Attrs):
    """What a refresh kept from ``from_version`` (None: a fresh layout), in samples and rows."""

    from_version: str | None
    n_reused: int
    n_recomputed: int
    n_rows_reused: int


class VersionAttrs(_Attrs):
    """The root attributes of one version (see ``storage_schemas/feature_store.v1.json``).

    ``input_fingerprint`` is 32 hex digits, ``version_id`` ``v-`` + 16; ``created`` is ISO 8601
    UTC to the second; ``n_samples`` counts every table row, ``n_ok`` the processed ones.
    ``inputs_version_id`` is the id the inputs name (equal to ``version_id`` unless transient
    failures made the version incomplete: ``mer_prep.store.versions``). ``table_digest`` and
    ``attrs_digest`` are set by the writer after the rest (``mer_prep.store.schema``).
    """

    schema_: str = SCHEMA_NAME
    schema_version: int = SCHEMA_VERSION
    dataset: str
    labels: str
    class_names: list[str]
    recipe: RecipeAttrs
    input_fingerprint: str
    code_version: str
    version_id: str
    created: str
    n_samples: int
    n_ok: int
    arrays: dict[str, ArrayLayout]
    table_columns: dict[str, str]
    failures: list[FailureAttrs]
    complete: bool | None = None
    inputs_version_id: str | None = None
    au_list: list[int] | None = None
    corrections: list[CorrectionAttrs] | None = None
    reuse: ReuseAttrs | None = None
    stage_seconds: dict[str, float] | None = None
    table_digest: str | None = None
    attrs_digest: str | None = None

    model_config = _SCHEMA_ALIASED

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> VersionAttrs:
        """The model of stored root attributes (``pydantic.ValidationError`` if malformed)."""
        return cls.model_validate(attrs)

    def to_attrs(self) -> dict[str, Any]:
        """The JSON-able attributes to store: optional attributes left unset are not written,
        fields the model does not name (``extra``) are."""
        dumped = self.model_dump(mode="json", by_alias=True)
        return {
            key: value
            for key, value in dumped.items()
            if value is not None or key not in OPTIONAL_ATTRIBUTES
        }

    @property
    def is_complete(self) -> bool:
        """False for a version that records transient failures (versions from before the
        distinction count as complete)."""
        return self.complete is not False and not any(
            failure.kind == TRANSIENT for failure in self.failures
        )


class SmoteAttrs(_Attrs):
    """A split's SMOTE settings: the array whose flattened samples SMOTE interpolated, the k it
    used (the smallest over the folds), its seed, the arrays written out in full."""

    features: str
    k_neighbors: int
    seed: int
    materialised: list[str]


class SplitAttrs(_Attrs):
    """The attributes of a stored split, group ``splits/<name>``
    (``storage_schemas/split.v1.json``): ``n_rows`` is the reader's table length it indexes,
    ``smote`` None without SMOTE samples. ``schema_version`` 2 splits carry ``array_digests``
    and ``attrs_digest`` (``mer_prep.store.split_digest``); version 1 ones were written before."""

    schema_: str  # SPLIT_SCHEMA_NAME
    schema_version: int
    name: str
    kind: str
    leaky: bool
    seed: int | None
    fold_names: list[str]
    version_id: str
    n_rows: int
    created: str
    smote: SmoteAttrs | None
    array_digests: dict[str, str] | None = None
    attrs_digest: str | None = None

    model_config = _SCHEMA_ALIASED


#: attribute names a version may lack (written by newer writers, or set after the rest)
OPTIONAL_ATTRIBUTES = frozenset(
    field.alias or name
    for name, field in VersionAttrs.model_fields.items()
    if not field.is_required() and name not in ("schema_", "schema_version")
)
#: attribute names every version carries
REQUIRED_ATTRIBUTES = frozenset(
    field.alias or name
    for name, field in VersionAttrs.model_fields.items()
    if field.is_required() or name in ("schema_", "schema_version")
)
