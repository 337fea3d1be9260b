"""The only module that reads stores: ``open_store`` → table, arrays, subjects, labels.

The root attributes come typed as ``FeatureStore.info`` (``mer_prep.store.layout.VersionAttrs``;
``attrs`` is the same as stored, as a mapping); splits, folds and SMOTE plans are
``mer_prep.store.split_reader``'s, mixed into ``FeatureStore``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from functools import cached_property

import dask.array as da
import icechunk as ic
import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.api.asynchronous
from numpy.typing import NDArray
from pydantic import ValidationError
from zarr.core.sync import sync

from mer_prep.datasets.aus import au_matrix, au_numbers
from mer_prep.errors import (
    ArrayNotFoundError,
    CorruptDataError,
    StoreNotFoundError,
    VersionNotFoundError,
)
from mer_prep.labels import au_set
from mer_prep.recipes import Recipe
from mer_prep.store.bulk import check_content, read_rows
from mer_prep.store.cache import cached_array
from mer_prep.store.layout import AUS_ARRAY, MAIN, TABLE_GROUP, VersionAttrs
from mer_prep.store.long_layout import is_long_video_attrs
from mer_prep.store.nodes import array_at, group_at, read_values
from mer_prep.store.repo import (
    Location,
    StoreLocation,
    open_repository,
    version_tags,
)
from mer_prep.store.schema import attrs_problem, table_digest
from mer_prep.store.split_reader import ON_DEMAND_SPLITS, Fold, SplitReader  # noqa: F401
from mer_prep.store.table import MISSING
from mer_prep.store.versions import BASE_AU_SET


def rows_to_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Stored columns -> DataFrame, with JSON columns decoded to Python lists/dicts."""
    frame = pd.DataFrame({name: np.asarray(values) for name, values in columns.items()})
    for name in ("source_frames", "face_box", "aug_params"):
        if name in frame:
            frame[name] = [json.loads(v) if v else None for v in frame[name]]
    if "apex" in frame:
        frame["apex"] = frame["apex"].astype("Int64").where(frame["apex"] != MISSING)
    return frame


class FeatureStore(SplitReader):
    """One version of a store, read-only.

    ``table`` lists the successfully processed samples (row ``i`` of the table is sample ``i``
    of every array view); ``table_all`` adds the failed ones with their error. Splits, folds
    and SMOTE plans: ``SplitReader``.
    """

    def __init__(self, location: StoreLocation, repo: ic.Repository, session: ic.Session) -> None:
        self.location, self.repo, self.session = location, repo, session
        self.group = zarr.open_group(session.store, mode="r")

    @property
    def path(self) -> str:
        """The store's location as text: a local path or ``s3://bucket/prefix``."""
        return str(self.location)

    @cached_property
    def attrs(self) -> dict:
        """The version's root attributes as stored, checked against the digest written with
        them (``info`` is the same, typed)."""
        return checked_attrs(self.group, self.location)

    @cached_property
    def info(self) -> VersionAttrs:
        """The version's root attributes, typed (``mer_prep.store.layout.VersionAttrs``)."""
        try:
            return VersionAttrs.from_attrs(self.attrs)
        except ValidationError as error:
            raise CorruptDataError(
                f"store {self.location}: the version's attributes are not a "
                f"version's ({error.error_count()} problems, first: "
                f"{error.errors()[0]['loc']}); run `mer-prep verify "
                f"{self.location}`"
            ) from None

    @property
    def version_id(self) -> str:
        return self.info.version_id

    @property
    def recipe(self) -> Recipe:
        return Recipe.model_validate(
            {**self.info.recipe.parameters, "paper": self.info.recipe.paper}
        )

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def array_names(self) -> list[str]:
        return list(self.info.arrays)

    @cached_property
    def table_all(self) -> pd.DataFrame:
        try:
            table = group_at(self.group, TABLE_GROUP)
            columns = {name: read_values(array_at(table, name)) for name in self.info.table_columns}
        except Exception as error:  # a column failing its CRC, a lost manifest
            raise CorruptDataError(
                f"store {self.location}: the sample table cannot be read "
                f"({type(error).__name__}); run `mer-prep verify "
                f"{self.location}`"
            ) from error
        expected = self.info.table_digest
        if expected is not None and table_digest(columns) != expected:
            raise CorruptDataError(
                f"store {self.location}: the sample table does not match its "
                f"digest (corrupt metadata or chunks); run `mer-prep verify "
                f"{self.location}`"
            )
        return rows_to_frame(columns)

    def _content_crcs(
        self, name: str, stored_rows: Sequence[int] | NDArray[np.int64]
    ) -> list[int | None]:
        """The CRC-32C the writer recorded for ``name`` at each stored row (None: unknown, as in
        stores written before ``content_crc32c``)."""
        if "content_crc32c" not in self.table_all:
            return [None] * len(stored_rows)
        column = self.table_all["content_crc32c"].to_numpy()
        return [json.loads(column[int(row)] or "{}").get(name) for row in stored_rows]

    @cached_property
    def _ok_rows(self) -> np.ndarray:
        return np.flatnonzero(self.table_all["status"].to_numpy() == "ok")

    @cached_property
    def table(self) -> pd.DataFrame:
        """Sample table of the processed samples (pandas), index 0..n-1 matching the arrays."""
        return self.table_all.iloc[self._ok_rows].reset_index(drop=True)

    @property
    def failures(self) -> pd.DataFrame:
        """Every sample that failed (scan or processing), with file, stage, message and kind
        (``permanent`` or ``transient``; records written before the distinction count as
        ``permanent``, as the writer treats them)."""
        columns = ["sample_id", "file", "stage", "message", "kind"]
        return pd.DataFrame(
            [failure.model_dump() for failure in self.info.failures], columns=columns
        )

    @cached_property
    def au_list(self) -> list[int]:
        """AU numbers of the columns of ``aus`` (``cross12`` first; ``mer_prep.store.versions``).
        A store written before AU targets: the same rule over its table's ``action_units``."""
        if self.info.au_list is not None:
            return list(self.info.au_list)
        parsed = [au_numbers(text) for text in self.table_all["action_units"]]
        base = list(au_set(BASE_AU_SET))
        return base + sorted({au for numbers in parsed for au in numbers} - set(base))

    @cached_property
    def aus(self) -> np.ndarray:
        """Action units per ``table`` row as multi-label targets: bool (n, len(au_list));
        an augmented copy has its parent's. A store written before the ``aus`` array: parsed
        from the table's ``action_units`` text (what the writer stores from)."""
        if self.info.au_list is not None and AUS_ARRAY in self.group:
            aus = read_values(array_at(self.group, AUS_ARRAY))
            return np.asarray(aus, dtype=bool)[self._ok_rows]
        return au_matrix(self.table["action_units"].tolist(), self.au_list)

    @property
    def subjects(self) -> list[str]:
        """Dataset-qualified subject ids present, sorted."""
        return sorted(self.table["subject"].unique())

    @property
    def labels(self) -> np.ndarray:
        """Class index per sample, int64 (n,), into ``class_names``."""
        return self.table["label"].to_numpy(dtype=np.int64)

    def _stored_array(self, name: str) -> zarr.Array:
        """The stored array ``name``; ``ArrayNotFoundError`` naming those there are otherwise."""
        node = self.group[name] if isinstance(name, str) and name in self.group else None
        if not isinstance(node, zarr.Array):
            raise ArrayNotFoundError(
                f"store {self.location}: version {self.version_id} has no "
                f"array {name!r} (it stores {', '.join(self.array_names)})"
            )
        return node

    def dask(self, name: str) -> da.Array:
        """Lazy view of one array over the processed samples, one sample per chunk."""
        full = da.from_zarr(self._stored_array(name))
        return full[self._ok_rows] if len(self._ok_rows) < full.shape[0] else full

    def array(
        self,
        name: str,
        dtype: str | None = None,
        rows: np.ndarray | None = None,
        *,
        cache: bool = False,
    ) -> np.ndarray:
        """One array over the processed samples (or the ``table`` rows ``rows``), loaded in bulk
        (optionally cast, e.g. ``float32``): (n, *per-sample shape).

        cache: keep a decoded copy in the local array cache (``mer_prep.store.cache``) and read
        it from there next time: a version is then decompressed once per machine (training
        reads every array of a version again for each model, seed and variant)."""
        wanted = self._ok_rows if rows is None else self._ok_rows[np.asarray(rows, np.int64)]
        stored = self._stored_array(name)

        def read() -> np.ndarray:
            try:
                return read_rows(
                    stored,
                    wanted,
                    what=f"store {self.location}: {name}",
                    expected=self._content_crcs(name, wanted),
                )
            except (ValueError, CorruptDataError) as error:  # a chunk failing its checksum
                raise self._corruption(
                    name, range(len(self._ok_rows)) if rows is None else rows, error
                ) from error

        values = (
            cached_array(
                str(self.location),
                self.session.snapshot_id,
                name,
                wanted,
                read,
                dtype=stored.dtype,
                shape=(len(wanted), *stored.shape[1:]),
            )
            if cache
            else read()
        )
        return values.astype(dtype) if dtype else values

    def _corruption(self, name: str, rows, error: Exception) -> CorruptDataError:
        """The error naming the first ``table`` row of ``rows`` whose chunk of ``name`` is bad."""
        array = array_at(self.group, name)
        for row in rows:
            stored = int(self._ok_rows[row])
            try:
                check_content(
                    read_values(array, stored), self._content_crcs(name, [stored])[0], name, stored
                )
            except (ValueError, CorruptDataError) as found:
                sample = self.table_all["sample_id"].iloc[stored]
                return CorruptDataError(
                    f"store {self.location}: array {name!r}, sample {sample} "
                    f"(row {row}) is corrupt ({found}); run `mer-prep "
                    f"verify {self.location}`"
                )
        return CorruptDataError(
            f"store {self.location}: array {name!r} cannot be read "
            f"({error}); run `mer-prep verify {self.location}`"
        )

    def xarray(self) -> xr.Dataset:
        """All arrays as an xarray Dataset with named dims and the table as ``sample`` coords;
        the action units as ``aus`` (sample, au), bool, with the AU numbers as ``au`` coords."""
        # name -> (dims, values): the stored arrays lazily (dask), the AU targets in memory
        variables: dict[str, tuple[Sequence[str], da.Array | np.ndarray]] = {
            name: (self.info.arrays[name].dims, self.dask(name)) for name in self.array_names
        }
        variables["aus"] = (("sample", "au"), self.aus)
        coords = {
            col: ("sample", self.table[col].to_numpy())
            for col in ("sample_id", "dataset", "subject", "clip", "label", "label_name")
        }
        coords["au"] = ("au", np.asarray(self.au_list, dtype=np.int64))
        return xr.Dataset(
            variables,
            coords=coords,
            attrs={"version_id": self.version_id, "recipe": self.info.recipe.name},
        )

    def to_torch(self, fold: str | int, part: str = "train", **options):
        """A ``torch.utils.data.Dataset`` over one fold's ``part`` ("train" or "test").

        ``options`` (``mer_prep.store.torch_dataset.fold_dataset``'s): ``arrays`` (names;
        None: all), ``balance``: ``"weights"`` (the fold's class weights on
        ``.class_weights`` for the loss), ``"smote"`` (training part plus the split's SMOTE
        samples, rebuilt from their parents), or None; ``split`` (default ``"loso"``);
        ``target``: ``"label"`` (an item's ``label`` is the class index, ``labels``) or
        ``"aus"`` (the float32 multi-hot AU vector over ``au_list``, ``aus``; no SMOTE). The
        test part holds the original test clips only; ``tta=True`` adds their augmented
        copies (test-time augmentation), each item's ``original`` naming its clip's row.
        Needs the ``torch`` extra.
        """
        from mer_prep.store.torch_dataset import fold_dataset

        return fold_dataset(self, fold, part=part, **options)

    def loader(self, fold: str | int, part: str = "train", **options):
        """A ``torch.utils.data.DataLoader`` over one fold's ``part`` that works with worker
        processes (``num_workers=2`` under the default fork start method included): the fold's
        arrays are read in bulk before any worker starts. ``options``: the dataset's, as for
        ``to_torch`` (``arrays``, ``balance``, ``split``, ``target``, ``tta``), and the loader's:
        ``batch_size``, ``shuffle``, ``num_workers``, ``seed`` and any other DataLoader argument."""
        from mer_prep.store.torch_dataset import DATASET_OPTIONS, fold_loader

        choice = {name: options.pop(name) for name in DATASET_OPTIONS if name in options}
        return fold_loader(self.to_torch(fold, part, **choice), train=part == "train", **options)

    @cached_property
    def _async_arrays(self) -> dict:
        group = sync(zarr.api.asynchronous.open_group(store=self.session.store, mode="r"))
        return {name: sync(group.getitem(name)) for name in self.array_names}

    def sample(self, row: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays of one ``table`` row: name -> per-sample array, stored dtype.

        The arrays are fetched and decoded concurrently (one event-loop round trip: about 3x
        faster than one read per array for ``ha3d``'s three, measured in bench/reader.py).
        """
        names = list(names or self.array_names)
        for name in names:
            self._stored_array(name)
        stored_row = int(self._ok_rows[row])
        arrays = self._async_arrays

        async def fetch() -> list[np.ndarray]:
            return await asyncio.gather(*(arrays[n].getitem(stored_row) for n in names))

        try:
            values = dict(zip(names, sync(fetch()), strict=True))
        except ValueError as error:
            bad = next((n for n in names if self._fails(n, stored_row)), names[0])
            raise self._corruption(bad, [row], error) from error
        for name, value in values.items():
            check_content(
                value,
                self._content_crcs(name, [stored_row])[0],
                f"store {self.location}: {name}",
                stored_row,
            )
        return values

    def _fails(self, name: str, stored_row: int) -> bool:
        try:
            check_content(
                read_values(array_at(self.group, name), stored_row),
                self._content_crcs(name, [stored_row])[0],
                name,
                stored_row,
            )
        except (ValueError, CorruptDataError):
            return True
        return False

    def row_reader(self, name: str):
        """``read(rows)`` -> the array's samples at ``table`` rows (sorted unique rows read
        once)."""
        array, ok = self._stored_array(name), self._ok_rows

        def read(rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(rows, dtype=np.int64)
            try:
                return read_rows(
                    array,
                    ok[rows],
                    what=f"store {self.location}: {name}",
                    expected=self._content_crcs(name, ok[rows]),
                )
            except (ValueError, CorruptDataError) as error:
                raise self._corruption(name, rows, error) from error

        return read

    def versions(self) -> pd.DataFrame:
        """Every tagged version of the store, newest first."""
        rows = []
        for tag in version_tags(self.repo):
            info = self.repo.lookup_snapshot(self.repo.lookup_tag(tag))
            rows.append(
                {
                    "version_id": tag,
                    "snapshot": info.id,
                    "written_at": info.written_at,
                    "message": info.message,
                }
            )
        return pd.DataFrame(rows, columns=["version_id", "snapshot", "written_at", "message"])

    def __repr__(self) -> str:
        return (
            f"FeatureStore({self.path!r}, version={self.version_id!r}, "
            f"samples={len(self.table)}, arrays={self.array_names})"
        )

    @property
    def plot(self):
        """Figures of this version (``mer_prep.plot.StorePlots``): ``store.plot.sample(0)``."""
        from mer_prep.plot.store_plots import StorePlots

        return StorePlots(self)

    def _repr_html_(self) -> str:
        from mer_prep.plot.notebook import store_html

        return store_html(self)


def open_store(path: Location, version: str | None = None) -> FeatureStore:
    """Open a store at its latest version (the tip of ``main``) or at a version tag."""
    location, repo, session, group = open_version_group(path, version)
    if is_long_video_attrs(group.attrs):
        raise ArrayNotFoundError(
            f"store {location} holds long-video motion, not clips: read it with "
            f"mer_prep.store.long_reader.open_long_store (or `mer-prep spot {location}`)"
        )
    return FeatureStore(location, repo, session)


def checked_attrs(group: zarr.Group, location: StoreLocation) -> dict:
    """A version's root attributes as stored, checked against the digest written with them
    (``CorruptDataError`` when they do not match: corrupt metadata)."""
    attrs = dict(group.attrs)
    problem = attrs_problem(attrs)
    if problem is not None:
        raise CorruptDataError(
            f"store {location}: the version's attributes {problem} "
            f"(corrupt metadata); run `mer-prep verify {location}`"
        )
    return attrs


def open_version_group(
    path: Location, version: str | None = None
) -> tuple[StoreLocation, ic.Repository, ic.Session, zarr.Group]:
    """The location, repository, read-only session and root group of a store's latest version
    (the tip of ``main``) or of a version tag, of either layout (clips, long videos);
    ``VersionNotFoundError``, ``StoreNotFoundError`` or ``CorruptDataError`` in one line."""
    location = StoreLocation.parse(path)
    repo = open_repository(location)
    if version and version not in repo.list_tags():
        known = ", ".join(version_tags(repo)) or "none"
        raise VersionNotFoundError(
            f"store {location} has no version {version!r} (versions: {known})"
        )
    try:
        session = (
            repo.readonly_session(tag=version) if version else repo.readonly_session(branch=MAIN)
        )
        group = zarr.open_group(session.store, mode="r")
    except Exception as error:  # a snapshot or ref that no longer reads
        if (
            isinstance(error, zarr.errors.GroupNotFoundError)
            and not version
            and (_never_committed(repo))
        ):
            raise StoreNotFoundError(f"store {location} has no committed version yet") from None
        problem = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CorruptDataError(
            f"store {location}: {version or MAIN} cannot be opened "
            f"({type(error).__name__}: {problem}); run `mer-prep verify "
            f"{location}`"
        ) from error
    if "version_id" not in group.attrs:
        raise StoreNotFoundError(f"store {location} has no committed version yet")
    return location, repo, session, group


def _never_committed(repo: ic.Repository) -> bool:
    """True when ``main`` is still the repository's empty initial snapshot."""
    try:
        return len(list(repo.ancestry(branch=MAIN))) <= 1
    except Exception:  # noqa: BLE001 - an unreadable history is not an empty one
        return False
