"""The store layout declared in ``storage_schemas/feature_store.v1.json``, and its checks.

``validate_attrs`` checks the root attributes with JSON Schema; ``validate_group`` checks the
zarr arrays against those attributes and the file's ``x-zarr`` rules (dims, shapes, dtypes,
one sample per chunk, Blosc zstd + bitshuffle, the sample table's columns).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import jsonschema
import numpy as np
import zarr

SCHEMA_FILE = "feature_store.v1.json"


class SchemaError(ValueError):
    """A store (or a write into it) does not follow the declared layout."""


@cache
def load_schema() -> dict:
    """The schema document as a dict."""
    return json.loads((resources.files("storage_schemas") / SCHEMA_FILE).read_text())


def zarr_rules() -> dict:
    return load_schema()["x-zarr"]


def validate_attrs(attrs: dict) -> None:
    """Raise SchemaError when the root attributes do not match the JSON Schema."""
    validator = jsonschema.Draft202012Validator(load_schema(),
                                                format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(attrs), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise SchemaError("store attributes do not match the schema:\n  " + "\n  ".join(lines))


def check_sample_array(name: str, value: np.ndarray, spec: dict) -> None:
    """Raise SchemaError when one sample's array does not fit its declared shape and dtype."""
    if tuple(value.shape) != tuple(spec["shape"][1:]):
        raise SchemaError(f"array {name!r}: sample shape {value.shape} != declared {spec['shape'][1:]}")
    if value.dtype != np.dtype(spec["dtype"]):
        raise SchemaError(f"array {name!r}: dtype {value.dtype} != declared {spec['dtype']}")


def _check_codec(name: str, array: zarr.Array, rules: dict) -> None:
    wanted = rules["compressor"]
    codecs = [c for c in array.compressors]
    ok = any(type(c).__name__.lower().startswith(wanted["name"])
             and str(getattr(c.cname, "value", c.cname)) == wanted["cname"]
             and str(getattr(c.shuffle, "value", c.shuffle)) == wanted["shuffle"] for c in codecs)
    if not ok:
        raise SchemaError(f"array {name!r}: compressors {codecs} are not {wanted}")


def validate_group(group: zarr.Group) -> None:
    """Validate a whole store group: attributes, every declared array, the sample table."""
    attrs = dict(group.attrs)
    validate_attrs(attrs)
    rules = zarr_rules()
    n = attrs["n_samples"]
    for name, spec in attrs["arrays"].items():
        if name not in group:
            raise SchemaError(f"declared array {name!r} is missing")
        array = group[name]
        dims = tuple(array.metadata.dimension_names or ())
        if dims != tuple(spec["dims"]):
            raise SchemaError(f"array {name!r}: dimension names {dims} != declared {spec['dims']}")
        if tuple(array.shape) != (n, *spec["shape"][1:]):
            raise SchemaError(f"array {name!r}: shape {array.shape} != ({n}, *{spec['shape'][1:]})")
        if array.dtype != np.dtype(spec["dtype"]):
            raise SchemaError(f"array {name!r}: dtype {array.dtype} != declared {spec['dtype']}")
        if tuple(array.chunks) != (1, *array.shape[1:]):
            raise SchemaError(f"array {name!r}: chunks {array.chunks} are not one sample per chunk")
        _check_codec(name, array, rules)
    table = group[rules["table_group"]]
    for column, kind in rules["required_table_columns"].items():
        if column not in table:
            raise SchemaError(f"sample table column {column!r} is missing")
        values = table[column]
        if values.shape != (n,):
            raise SchemaError(f"sample table column {column!r}: shape {values.shape} != ({n},)")
        if attrs["table_columns"].get(column) != kind:
            raise SchemaError(f"sample table column {column!r}: declared as "
                              f"{attrs['table_columns'].get(column)!r}, schema wants {kind!r}")
