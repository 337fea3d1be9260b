"""The store layout declared in ``storage_schemas/feature_store.v1.json``, and its checks.

``validate_attrs`` checks the root attributes with JSON Schema; ``validate_group`` checks the
zarr arrays against those attributes and the file's ``x-zarr`` rules (dims, shapes, dtypes,
one sample per chunk, Blosc lz4 or zstd + bitshuffle, the sample table's columns, the ``aus``
array when the attributes declare its ``au_list``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import google_crc32c
import jsonschema
import numpy as np
import zarr
from pydantic import BaseModel, ValidationError

from mer_prep.errors import SchemaError
from mer_prep.recipes import ArraySpec
from mer_prep.store.layout import (
    OPTIONAL_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    SplitAttrs,
    VersionAttrs,
)
from mer_prep.store.nodes import array_at, group_at

Model = TypeVar("Model", bound=BaseModel)

SCHEMA_FILE = "feature_store.v1.json"
SPLIT_SCHEMA_FILE = "split.v1.json"


@cache
def load_schema(name: str = SCHEMA_FILE) -> dict:
    """A schema document of ``storage_schemas/`` as a dict (the store's by default)."""
    return json.loads((resources.files("storage_schemas") / name).read_text())


DIGEST_KEY = "attrs_digest"


def attrs_digest(attrs: Mapping[str, Any]) -> str:
    """sha256 of a store's root attributes (all but the digest itself) as canonical JSON: written
    with the version and checked when it is opened, so that a flipped bit in the repository's
    metadata never reads back as other attributes."""
    body = {key: value for key, value in attrs.items() if key != DIGEST_KEY}
    canonical = json.dumps(
        json.loads(json.dumps(body)), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


TABLE_DIGEST_KEY = "table_digest"


def attrs_problem(attrs: Mapping[str, Any]) -> str | None:
    """What is wrong with a version's root attributes as read, None when they are the ones
    written: they match the digest written with them, or they are a version's from before
    digests.

    Every version written since digests carries one, so its absence is believed only of
    attributes such an older version could hold: no ``table_digest`` (written with it, since
    the same writer) and no key the model (``layout.VersionAttrs``) does not name. A flipped bit
    that renames ``attrs_digest`` (or, through a compressed back-reference, both digest keys)
    leaves a key no writer wrote, and is refused. Writers before digests wrote the model's keys
    only (``stage_seconds`` their one extra); writers that add keys write the digest too.
    """
    if DIGEST_KEY in attrs:
        if attrs[DIGEST_KEY] != attrs_digest(attrs):
            return "do not match their digest"
        return None
    if TABLE_DIGEST_KEY in attrs:
        return f"lack their digest ({DIGEST_KEY}) though the table's is there"
    unknown = sorted(set(attrs) - REQUIRED_ATTRIBUTES - OPTIONAL_ATTRIBUTES)
    if unknown:
        return f"lack their digest ({DIGEST_KEY}) and hold keys no writer wrote: {unknown}"
    return None


def table_digest(columns: dict[str, np.ndarray]) -> str:
    """sha256 of the sample table's columns (names, kinds and values, in name order): kept in
    the root attributes, checked when the table is read."""
    digest = hashlib.sha256()
    for name in sorted(columns):
        values = np.asarray(columns[name])
        digest.update(name.encode() + b"\0")
        if values.dtype.kind in "OUST":
            digest.update(json.dumps([str(v) for v in values.tolist()]).encode())
        else:
            digest.update(str(values.dtype).encode() + np.ascontiguousarray(values).tobytes())
    return "sha256:" + digest.hexdigest()


def array_digest(values: np.ndarray) -> str:
    """sha256 of an array as it reads back: its shape, dtype and values (strings as JSON).
    Small arrays written whole (run records, splits) carry it, so that a lost chunk reference
    (zarr reads the fill value) or a changed shape never reads back as data."""
    values = np.asarray(values)
    digest = hashlib.sha256(json.dumps(list(values.shape)).encode() + b"\0")
    if values.dtype.kind in "OUST":
        digest.update(b"str\0" + json.dumps([str(v) for v in values.reshape(-1).tolist()]).encode())
    else:
        digest.update(str(values.dtype).encode() + b"\0" + np.ascontiguousarray(values).tobytes())
    return "sha256:" + digest.hexdigest()


def content_crc(values: np.ndarray) -> int:
    """CRC-32C of one sample's array as stored (its dtype's bytes, C order)."""
    checksum = google_crc32c.Checksum()
    checksum.update(np.ascontiguousarray(values).view(np.uint8).reshape(-1))
    return int.from_bytes(checksum.digest(), "big")


def zarr_rules() -> dict:
    return load_schema()["x-zarr"]


def validate_attrs(attrs: dict, schema: str = SCHEMA_FILE) -> None:
    """Raise SchemaError when attributes do not match a JSON Schema (the store root's default)."""
    validator = jsonschema.Draft202012Validator(
        load_schema(schema), format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(attrs), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise SchemaError(f"attributes do not match {schema}:\n  " + "\n  ".join(lines))


def validate_split(attrs: dict, arrays: dict[str, np.ndarray]) -> None:
    """Check a split group's attributes and arrays (``storage_schemas/split.v1.json``)."""
    validate_attrs(attrs, SPLIT_SCHEMA_FILE)
    split = _typed(SplitAttrs, attrs, SPLIT_SCHEMA_FILE)
    n_rows, n_folds, name = split.n_rows, len(split.fold_names), split.name
    fold = arrays.get("test_fold")
    if fold is None or fold.shape != (n_rows,) or fold.dtype != np.int64:
        raise SchemaError(f"split {name!r}: test_fold must be int64 ({n_rows},)")
    # -1: left out by the protocol; -2: trained on in every fold, never tested (dfme_official)
    if n_rows and (fold.min() < -2 or fold.max() >= n_folds):
        raise SchemaError(f"split {name!r}: test_fold outside -2..{n_folds - 1}")
    weights = arrays.get("class_weights")
    if weights is None or weights.ndim != 2 or weights.shape[0] != n_folds:
        raise SchemaError(f"split {name!r}: class_weights must be (fold, class)")
    if split.smote is not None:
        names = ("smote_fold", "smote_parent_a", "smote_parent_b", "smote_weight", "smote_label")
        lengths = {arrays[n].shape for n in names if n in arrays}
        if len(lengths) != 1 or any(n not in arrays for n in names):
            raise SchemaError(f"split {name!r}: SMOTE arrays missing or unequal")


def _typed(model: type[Model], attrs: dict, schema: str) -> Model:
    """``attrs`` (already valid JSON Schema) as the ``layout`` model of ``schema``."""
    try:
        return model.model_validate(attrs)
    except ValidationError as error:  # the model and the schema disagree: test_store_layout
        raise SchemaError(
            f"attributes do not match {schema}: {error.errors()[0]['loc']}: "
            f"{error.errors()[0]['msg']}"
        ) from None


def check_sample_array(name: str, value: np.ndarray, spec: ArraySpec) -> None:
    """Raise SchemaError when one sample's array does not fit its declared shape and dtype."""
    if tuple(value.shape) != tuple(spec.shape):
        raise SchemaError(f"array {name!r}: sample shape {value.shape} != declared {spec.shape}")
    if value.dtype != np.dtype(spec.dtype):
        raise SchemaError(f"array {name!r}: dtype {value.dtype} != declared {spec.dtype}")


def _check_codec(name: str, array: zarr.Array, rules: dict) -> None:
    """Blosc with one of the schema's internal codecs (``cnames``: lz4 for versions written
    since bench/codec.py's measurement, zstd before) and bitshuffle, then the CRC-32C."""
    wanted = rules["compressor"]
    codecs = [c for c in array.compressors]
    ok = any(
        type(c).__name__.lower().startswith(wanted["name"])
        and _setting(c, "cname") in wanted["cnames"]
        and _setting(c, "shuffle") == wanted["shuffle"]
        for c in codecs
    )
    if not ok:
        raise SchemaError(
            f"array {name!r}: compressors {codecs} are not {wanted['name']} "
            f"{' or '.join(wanted['cnames'])} + {wanted['shuffle']}"
        )
    if not any(type(c).__name__.lower().startswith(rules["checksum"]) for c in codecs):
        raise SchemaError(f"array {name!r}: chunks carry no {rules['checksum']} checksum")


def _setting(codec: object, name: str) -> str:
    """A Blosc codec's setting ``name`` as text: zarr's ``BloscCodec`` holds enums, numcodecs'
    ``Blosc`` plain values (the codec's class name was checked before this is asked)."""
    value = getattr(codec, name, None)
    return str(getattr(value, "value", value))


def _dims(array: zarr.Array) -> tuple[str | None, ...]:
    """The array's dimension names; () for an array without them (or a zarr v2 one)."""
    return tuple(getattr(array.metadata, "dimension_names", None) or ())


def _check_aus(group: zarr.Group, spec: dict, n: int, n_aus: int, rules: dict) -> None:
    """The ``aus`` array: (n, len(au_list)) bool, named dims, checksummed."""
    name = spec["name"]
    if name not in group:
        raise SchemaError(f"array {name!r} (declared by the au_list attribute) is missing")
    array = array_at(group, name)
    dims = _dims(array)
    if dims != tuple(spec["dims"]):
        raise SchemaError(f"array {name!r}: dimension names {dims} != {tuple(spec['dims'])}")
    if tuple(array.shape) != (n, n_aus) or array.dtype != np.dtype(spec["dtype"]):
        raise SchemaError(
            f"array {name!r}: {array.dtype} {array.shape} != {spec['dtype']} ({n}, {n_aus})"
        )
    _check_codec(name, array, rules)


def validate_group(group: zarr.Group) -> None:
    """Validate a whole store group: attributes, every declared array, the sample table."""
    attrs = dict(group.attrs)
    validate_attrs(attrs)
    info = _typed(VersionAttrs, attrs, SCHEMA_FILE)
    rules = zarr_rules()
    n = info.n_samples
    for name, spec in info.arrays.items():
        if name not in group:
            raise SchemaError(f"declared array {name!r} is missing")
        array = array_at(group, name)
        dims = _dims(array)
        if dims != tuple(spec.dims):
            raise SchemaError(f"array {name!r}: dimension names {dims} != declared {spec.dims}")
        if tuple(array.shape) != (n, *spec.shape[1:]):
            raise SchemaError(f"array {name!r}: shape {array.shape} != ({n}, *{spec.shape[1:]})")
        if array.dtype != np.dtype(spec.dtype):
            raise SchemaError(f"array {name!r}: dtype {array.dtype} != declared {spec.dtype}")
        if tuple(array.chunks) != (1, *array.shape[1:]):
            raise SchemaError(f"array {name!r}: chunks {array.chunks} are not one sample per chunk")
        _check_codec(name, array, rules)
    if info.au_list is not None:  # stores written before AU targets have neither
        _check_aus(group, rules["aus_array"], n, len(info.au_list), rules)
    table = group_at(group, rules["table_group"])
    # a store written before a column was added lacks it and stays valid: readers tolerate it
    added_later = set(rules.get("table_columns_added_later", ())) - set(info.table_columns)
    for column, kind in rules["required_table_columns"].items():
        if column in added_later:
            continue
        if column not in table:
            raise SchemaError(f"sample table column {column!r} is missing")
        values = array_at(table, column)
        if values.shape != (n,):
            raise SchemaError(f"sample table column {column!r}: shape {values.shape} != ({n},)")
        if info.table_columns.get(column) != kind:
            raise SchemaError(
                f"sample table column {column!r}: declared as "
                f"{info.table_columns.get(column)!r}, schema wants {kind!r}"
            )
