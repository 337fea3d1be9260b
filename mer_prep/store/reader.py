"""The only module that reads stores: ``open_store`` → table, arrays, subjects, labels."""

from __future__ import annotations

import json
import os
from functools import cached_property

import dask.array as da
import icechunk as ic
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from mer_prep.recipes import Recipe
from mer_prep.store.repo import MAIN, open_repository, version_tags
from mer_prep.store.schema import zarr_rules
from mer_prep.store.table import MISSING


def rows_to_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Stored columns -> DataFrame, with JSON columns decoded to Python lists/dicts."""
    frame = pd.DataFrame({name: np.asarray(values) for name, values in columns.items()})
    for name in ("source_frames", "face_box", "aug_params"):
        if name in frame:
            frame[name] = [json.loads(v) if v else None for v in frame[name]]
    if "apex" in frame:
        frame["apex"] = frame["apex"].astype("Int64").where(frame["apex"] != MISSING)
    return frame


class FeatureStore:
    """One version of a store, read-only.

    ``table`` lists the successfully processed samples (row ``i`` of the table is sample ``i``
    of every array view); ``table_all`` adds the failed ones with their error.
    """

    def __init__(self, path: str, repo: ic.Repository, session: ic.Session) -> None:
        self.path, self.repo, self.session = path, repo, session
        self.group = zarr.open_group(session.store, mode="r")

    @cached_property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def version_id(self) -> str:
        return self.attrs["version_id"]

    @property
    def recipe(self) -> Recipe:
        return Recipe.model_validate({**self.attrs["recipe"]["parameters"],
                                      "paper": self.attrs["recipe"].get("paper", "")})

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    @property
    def array_names(self) -> list[str]:
        return list(self.attrs["arrays"])

    @cached_property
    def table_all(self) -> pd.DataFrame:
        table = self.group[zarr_rules()["table_group"]]
        return rows_to_frame({name: table[name][:] for name in self.attrs["table_columns"]})

    @cached_property
    def _ok_rows(self) -> np.ndarray:
        return np.flatnonzero(self.table_all["status"].to_numpy() == "ok")

    @cached_property
    def table(self) -> pd.DataFrame:
        """Sample table of the processed samples (pandas), index 0..n-1 matching the arrays."""
        return self.table_all.iloc[self._ok_rows].reset_index(drop=True)

    @property
    def failures(self) -> pd.DataFrame:
        """Every sample that failed (scan or processing), with file, stage and message."""
        return pd.DataFrame(self.attrs["failures"], columns=["sample_id", "file", "stage", "message"])

    @property
    def subjects(self) -> list[str]:
        """Dataset-qualified subject ids present, sorted."""
        return sorted(self.table["subject"].unique())

    @property
    def labels(self) -> np.ndarray:
        """Class index per sample, int64 (n,), into ``class_names``."""
        return self.table["label"].to_numpy(dtype=np.int64)

    def dask(self, name: str) -> da.Array:
        """Lazy view of one array over the processed samples, one sample per chunk."""
        full = da.from_zarr(self.group[name])
        return full[self._ok_rows] if len(self._ok_rows) < full.shape[0] else full

    def array(self, name: str, dtype: str | None = None) -> np.ndarray:
        """One array over the processed samples, loaded (optionally cast, e.g. ``float32``)."""
        array = self.group[name]
        if len(self._ok_rows) == array.shape[0]:
            values = array[:]
        else:
            values = array.get_orthogonal_selection((self._ok_rows,))
        return values.astype(dtype) if dtype else values

    def xarray(self) -> xr.Dataset:
        """All arrays as an xarray Dataset with named dims and the table as ``sample`` coords."""
        variables = {name: (self.attrs["arrays"][name]["dims"], self.dask(name))
                     for name in self.array_names}
        coords = {col: ("sample", self.table[col].to_numpy())
                  for col in ("sample_id", "dataset", "subject", "clip", "label", "label_name")}
        return xr.Dataset(variables, coords=coords, attrs={"version_id": self.version_id,
                                                           "recipe": self.attrs["recipe"]["name"]})

    def versions(self) -> pd.DataFrame:
        """Every tagged version of the store, newest first."""
        rows = []
        for tag in version_tags(self.repo):
            info = self.repo.lookup_snapshot(self.repo.lookup_tag(tag))
            rows.append({"version_id": tag, "snapshot": info.id, "written_at": info.written_at,
                         "message": info.message})
        return pd.DataFrame(rows, columns=["version_id", "snapshot", "written_at", "message"])

    def __repr__(self) -> str:
        return (f"FeatureStore({self.path!r}, version={self.version_id!r}, "
                f"samples={len(self.table)}, arrays={self.array_names})")


def open_store(path: str | os.PathLike, version: str | None = None) -> FeatureStore:
    """Open a store at its latest version (the tip of ``main``) or at a version tag."""
    repo = open_repository(path)
    session = (repo.readonly_session(tag=version) if version
               else repo.readonly_session(branch=MAIN))
    store = FeatureStore(str(path), repo, session)
    if "version_id" not in store.group.attrs:
        raise FileNotFoundError(f"store {path} has no committed version yet")
    return store
