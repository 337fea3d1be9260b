"""One-file HDF5 export of a store version, for trainers without Zarr (``mer-prep export``).

Layout: one dataset per array over the processed samples (chunked one sample per chunk, gzip
level 1, attribute ``dims``), group ``table`` with one dataset per column (strings as UTF-8,
JSON columns as their JSON text, a missing apex as ``-1`` — ``mer_prep.store.table.MISSING``,
as the store itself keeps it — with the column's attribute ``missing_value``), dataset ``aus``
(sample x AU, bool; attributes ``au_list`` and ``dims``, as JSON), group ``splits/<name>`` with
each stored split's arrays, and the store's root attributes as JSON text
in the file attribute ``mer_prep``.

The file appears whole or not at all: it is written under a temporary name in the same folder
and renamed when complete; an existing file is replaced only when asked to.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from mer_prep.errors import InvalidArgumentError
from mer_prep.store.layout import SPLITS_GROUP
from mer_prep.store.table import MISSING

BLOCK = 64  # samples copied at a time: memory stays a few MB whatever the store's size


def _column(series: pd.Series) -> tuple[np.ndarray, dict]:
    """A table column as the array stored for it, and the attributes that say how to read it."""
    if pd.api.types.is_integer_dtype(series.dtype) and series.hasnans:  # nullable Int64 <NA>
        return series.fillna(MISSING).to_numpy(dtype=np.int64), {"missing_value": MISSING}
    if pd.api.types.is_extension_array_dtype(series.dtype):
        series = series.astype(object).where(series.notna(), None)
    values = [
        json.dumps(v) if isinstance(v, (list, dict)) or v is None else v for v in series.tolist()
    ]
    array = np.asarray(values)
    extra = {"missing_value": MISSING} if series.name == "apex" else {}
    return (array.astype(h5py.string_dtype()) if array.dtype.kind in "OUS" else array), extra


def export_hdf5(store, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``store`` (a ``FeatureStore``) to the HDF5 file ``path``; returns the path.

    ``InvalidArgumentError`` when ``path`` exists, unless ``overwrite``. Written to a temporary
    file beside ``path`` and renamed on success; on any failure the temporary file is removed
    and an existing ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidArgumentError(
            f"{path} exists; pass --overwrite (overwrite=True) to "
            f"replace it, or choose another --out"
        )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        _write(store, temporary)
        with open(temporary, "rb") as written:  # on disk before it takes the name
            os.fsync(written.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            _publish_new(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _publish_new(temporary: Path, path: Path) -> None:
    """Rename ``temporary`` to ``path`` unless ``path`` appeared meanwhile (a hard link never
    replaces a file; where links are not supported, the check just before the rename)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise InvalidArgumentError(
            f"{path} appeared while exporting; not replaced (pass --overwrite to replace it)"
        ) from None
    except OSError:
        if path.exists():
            raise InvalidArgumentError(f"{path} appeared while exporting; not replaced") from None
        os.replace(temporary, path)


def _write(store, path: Path) -> None:
    n = len(store.table)
    with h5py.File(path, "x") as out:
        out.attrs["mer_prep"] = json.dumps(store.attrs)
        for name in store.array_names:
            spec = store.info.arrays[name]
            data = out.create_dataset(
                name,
                shape=(n, *spec.shape[1:]),
                dtype=spec.dtype,
                chunks=(1, *spec.shape[1:]) if n else None,
                compression="gzip",
                compression_opts=1,
            )
            data.attrs["dims"] = json.dumps(spec.dims)
            read = store.row_reader(name)
            for start in range(0, n, BLOCK):
                rows = np.arange(start, min(start + BLOCK, n))
                data[start : start + len(rows)] = read(rows)
        table = out.create_group("table")
        for column in store.table.columns:
            values, attrs = _column(store.table[column])
            table.create_dataset(column, data=values).attrs.update(attrs)
        aus = out.create_dataset("aus", data=store.aus)
        aus.attrs.update(
            {"au_list": json.dumps(store.au_list), "dims": json.dumps(["sample", "au"])}
        )
        for name in store.split_names:
            group = out.create_group(f"splits/{name}")
            group.attrs["mer_prep"] = json.dumps(store.split_attrs(name))
            stored = store.group[SPLITS_GROUP][name]
            for key in stored.array_keys():
                group.create_dataset(key, data=stored[key][:])
