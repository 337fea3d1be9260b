"""One-file HDF5 export of a store version, for trainers without Zarr (``mer-prep export``).

Layout: one dataset per array over the processed samples (chunked one sample per chunk, gzip
level 1, attribute ``dims``), group ``table`` with one dataset per column (strings as UTF-8,
JSON columns as their JSON text), group ``splits/<name>`` with each stored split's arrays, and
the store's root attributes as JSON text in the file attribute ``mer_prep``.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

BLOCK = 64  # samples copied at a time: memory stays a few MB whatever the store's size


def _column(values) -> np.ndarray:
    values = [json.dumps(v) if isinstance(v, (list, dict)) or v is None else v for v in values]
    array = np.asarray(values)
    return array.astype(h5py.string_dtype()) if array.dtype.kind in "OUS" else array


def export_hdf5(store, path: str | Path) -> Path:
    """Write ``store`` (a ``FeatureStore``) to the HDF5 file ``path``; returns the path."""
    path = Path(path)
    n = len(store.table)
    with h5py.File(path, "w") as out:
        out.attrs["mer_prep"] = json.dumps(store.attrs)
        for name in store.array_names:
            spec = store.attrs["arrays"][name]
            data = out.create_dataset(name, shape=(n, *spec["shape"][1:]), dtype=spec["dtype"],
                                      chunks=(1, *spec["shape"][1:]) if n else None,
                                      compression="gzip", compression_opts=1)
            data.attrs["dims"] = json.dumps(spec["dims"])
            read = store.row_reader(name)
            for start in range(0, n, BLOCK):
                rows = np.arange(start, min(start + BLOCK, n))
                data[start:start + len(rows)] = read(rows)
        table = out.create_group("table")
        for column in store.table.columns:
            table.create_dataset(column, data=_column(store.table[column].tolist()))
        for name in store.split_names:
            group = out.create_group(f"splits/{name}")
            group.attrs["mer_prep"] = json.dumps(store.split_attrs(name))
            stored = store.group["splits"][name]
            for key in stored.array_keys():
                group.create_dataset(key, data=stored[key][:])
    return path
