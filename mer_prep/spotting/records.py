"""Spotting runs recorded on the store's ``runs`` branch, beside training runs.

    record = spot_record(result, store={"location": ..., "version_id": ..., "snapshot_id": ...})
    save_spot_run(store, record)           # runs/<run_id>, schema mer-prep/spot-run
    list_spot_runs(store), load_spot_run(store, run_id), verify_spot_runs(store)

The storage is the training records' (``mer_prep.store.run_branch``: the same branch and group,
lock, retries and digests): a record is a group of JSON attributes (what was asked, each fold's
tuned values and counts, the pooled scores) and small arrays (every predicted and true interval,
and each video's score curve and threshold, so that the timelines are drawn from the record
alone), checked against its digests on every read. Training readers skip it by its schema.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

import numpy as np
import zarr

from mer_prep.errors import MerPrepError
from mer_prep.evaluation.spotting_intervals import SpotPrediction, SpotTruth
from mer_prep.spotting.learned_result import LearnedFold, LearnedSpotResult
from mer_prep.spotting.spotters import SpotParams
from mer_prep.spotting.tuning import SpotResult, _Cache
from mer_prep.store.run_branch import (
    DIGESTED_SCHEMA_VERSION,
    CorruptRunRecordError,
    RunRecordError,
    check_array,
    check_attrs,
    commit_record,
    first_line,
    jsonable,
    run_groups,
    runs_root,
    seal,
    write_array,
)
from mer_prep.store.verify import BrokenChunk

SPOT_SCHEMA = "mer-prep/spot-run"
T = TypeVar("T")
_SCHEMA = {"schema": SPOT_SCHEMA, "schema_version": DIGESTED_SCHEMA_VERSION}
_ARRAYS = {
    "pred_fold": np.int64,
    "pred_video": str,
    "pred_onset": np.int64,
    "pred_offset": np.int64,
    "pred_kind": str,
    "pred_score": np.float64,
    "truth_video": str,
    "truth_onset": np.int64,
    "truth_offset": np.int64,
    "truth_kind": str,
    "video_key": str,
    "video_threshold": np.float64,
    "curve_video": np.int64,
    "curve_frame": np.int64,
    "curve_value": np.float32,
}


class _Attr(Generic[T]):
    """A record's attribute of the same name, read-only: ``attrs[name]`` made a ``convert``
    (``str``, ``bool``; ``dict`` and ``list`` copy, so that a caller cannot change the record)."""

    def __init__(self, convert: Callable[[Any], T]) -> None:
        self.convert = convert

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, record: None, owner: type) -> _Attr[T]: ...
    @overload
    def __get__(self, record: SpotRunRecord, owner: type | None = None) -> T: ...
    def __get__(self, record: SpotRunRecord | None, owner: type | None = None) -> T | _Attr[T]:
        return self if record is None else self.convert(record.attrs[self.name])


@dataclass(frozen=True, eq=False)
class SpotRunRecord:
    """One spotting run: ``attrs`` (JSON: method, split, tune_on, leaky, store, grid, folds with
    their tuned values and scores, pooled metrics; a learned run also ``training``: settings,
    seed, seconds, and per fold its epochs, ks, fitting and validating subjects, score floor,
    validation F1 per (k, epoch) and seed) and ``arrays`` (name -> 1-D array, see
    ``_ARRAYS``)."""

    attrs: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(repr=False)

    run_id = _Attr(str)
    method = _Attr(str)
    leaky = _Attr(bool)
    created = _Attr(str)
    metrics = _Attr[dict](dict)
    folds = _Attr[list[dict]](list)

    @property
    def leak_label(self) -> str:
        """``LEAKY (tuned on the test subject)`` or ``""``."""
        return "LEAKY (tuned on the test subject)" if self.leaky else ""

    def predictions(self) -> list[SpotPrediction]:
        a = self.arrays
        return [
            SpotPrediction(
                video=video.rpartition("/")[2],
                subject=video.rpartition("/")[0],
                onset=int(on),
                offset=int(off),
                kind=str(kind),
                score=float(score),
            )
            for video, on, off, kind, score in zip(
                a["pred_video"],
                a["pred_onset"],
                a["pred_offset"],
                a["pred_kind"],
                a["pred_score"],
                strict=True,
            )
        ]

    def truths(self) -> list[SpotTruth]:
        a = self.arrays
        return [
            SpotTruth(
                video=str(video).rpartition("/")[2],
                subject=str(video).rpartition("/")[0],
                onset=int(on),
                offset=int(off),
                kind=str(kind),
            )
            for video, on, off, kind in zip(
                a["truth_video"], a["truth_onset"], a["truth_offset"], a["truth_kind"], strict=True
            )
        ]

    def curve(self, video_key: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(frames, score curve, threshold) of one video as its fold's values spotted it."""
        keys = [str(k) for k in self.arrays["video_key"]]
        if video_key not in keys:
            raise RunRecordError(f"spotting run {self.run_id} has no video {video_key!r}")
        index = keys.index(video_key)
        mine = self.arrays["curve_video"] == index
        return (
            self.arrays["curve_frame"][mine],
            self.arrays["curve_value"][mine],
            float(self.arrays["video_threshold"][index]),
        )

    @property
    def training(self) -> dict | None:
        """A learned run's training (settings, seed, seconds); None for a training-free run."""
        training = self.attrs.get("training")
        return dict(training) if training is not None else None

    @property
    def video_keys(self) -> list[str]:
        return [str(k) for k in self.arrays["video_key"]]


def new_run_id() -> str:
    return f"spot-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def spot_record(
    result: SpotResult,
    *,
    store: dict[str, Any],
    split: str = "loso",
    code_version: str = "",
    run_id: str | None = None,
) -> SpotRunRecord:
    """The record of ``result``: ``store`` names what was read (``location``, ``version_id``,
    ``snapshot_id``, ``dataset``; the snapshot is kept by ``gc`` while the record exists)."""
    fold_of = {key: f.index for f in result.folds for key in f.videos}
    params_of = {key: f.tuned.params for f in result.folds for key in f.videos}
    cache = _Cache(result.method, result.regions)
    if isinstance(result, LearnedSpotResult) and result.cache is not None:
        cache = result.cache  # a learned run's curves are its networks' (kept on the result)
    keys, thresholds, curve_video, curve_frame, curve_value = [], [], [], [], []
    for index, video in enumerate(result.videos):
        params: SpotParams = params_of[video.key]
        curve = cache.curve(video, params.k_me, params.smooth)
        found = cache.found(video, params.k_me, params)
        keys.append(video.key)
        thresholds.append(found.threshold)
        curve_video.append(np.full(len(curve), index, np.int64))
        curve_frame.append(video.motions[params.k_me].frame_numbers.astype(np.int64))
        curve_value.append(curve.astype(np.float32))
    preds = result.predictions
    truths = [t for v in result.videos for t in v.truths]
    arrays = {
        "pred_fold": np.array([fold_of[p.video_key] for p in preds], np.int64),
        "pred_video": np.array([p.video_key for p in preds], dtype=object),
        "pred_onset": np.array([p.onset for p in preds], np.int64),
        "pred_offset": np.array([p.offset for p in preds], np.int64),
        "pred_kind": np.array([p.kind for p in preds], dtype=object),
        "pred_score": np.array([p.score or 0.0 for p in preds], np.float64),
        "truth_video": np.array([t.video_key for t in truths], dtype=object),
        "truth_onset": np.array([t.onset for t in truths], np.int64),
        "truth_offset": np.array([t.offset for t in truths], np.int64),
        "truth_kind": np.array([t.kind for t in truths], dtype=object),
        "video_key": np.array(keys, dtype=object),
        "video_threshold": np.array(thresholds, np.float64),
        "curve_video": np.concatenate(curve_video) if curve_video else np.zeros(0, np.int64),
        "curve_frame": np.concatenate(curve_frame) if curve_frame else np.zeros(0, np.int64),
        "curve_value": np.concatenate(curve_value) if curve_value else np.zeros(0, np.float32),
    }

    def score_view(score) -> dict:
        view = score.as_dict()
        view.pop("defects", None)
        return view

    attrs = {
        "run_id": run_id or new_run_id(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "kind": "spotting",
        "method": result.method,
        "split": split,
        "tune_on": result.tune_on,
        "leaky": result.leaky,
        "store": dict(store),
        "code_version": code_version,
        "grid": result.grid.as_dict(),
        "regions": list(result.regions),
        "n_videos": len(result.videos),
        "n_subjects": len(result.folds),
        "n_predictions": len(preds),
        "n_truths": len(truths),
        "metrics": score_view(result.score),
        "folds": [
            {
                "index": f.index,
                "test_subject": f.test_subject,
                "tuned_on": list(f.tuned_on),
                "params": f.tuned.params.as_dict(),
                "tune_f1": f.tuned.f1,
                "n_points": f.tuned.n_points,
                "videos": list(f.videos),
                "n_predictions": len(f.predictions),
                "metrics": score_view(f.score),
                **_learned_fold_view(f),
            }
            for f in result.folds
        ],
        "duration_s": result.duration_s,
    }
    if isinstance(result, LearnedSpotResult):
        attrs["training"] = result.training_view()
    return SpotRunRecord(attrs=jsonable(attrs), arrays=arrays)


def _learned_fold_view(fold) -> dict[str, Any]:
    """What a learned fold adds to its record (nothing for a training-free one)."""
    if not isinstance(fold, LearnedFold):
        return {}
    return {
        "epochs": fold.epochs,
        "ks": list(fold.ks),
        "fit_on": list(fold.fit_on),
        "validated_on": list(fold.validated_on),
        "floor": fold.floor,
        "val_f1": [list(t) for t in fold.val_f1],
        "seed": fold.seed,
    }


def _write(group: zarr.Group, record: SpotRunRecord) -> None:
    written = {name: write_array(group, name, values) for name, values in record.arrays.items()}
    group.attrs.update(seal(jsonable({**_SCHEMA, **record.attrs}), written))


def save_spot_run(store, record: SpotRunRecord) -> str:
    """Commit ``record`` as ``runs/<run_id>`` on the store's ``runs`` branch; the snapshot id."""
    leak = f" {record.leak_label}" if record.leaky else ""
    return commit_record(
        store,
        record.run_id,
        lambda group: _write(group, record),
        message=f"spotting run {record.run_id}: {record.method} ({record.attrs['split']}){leak}",
        metadata={"run_id": record.run_id, "kind": "spotting"},
    )


def _read(group: zarr.Group, where: str) -> SpotRunRecord:
    try:
        attrs: dict[str, Any] = dict(group.attrs)
        digests = check_attrs(attrs, where)
        if not digests:
            raise CorruptRunRecordError(f"{where}: the record has no digests (corrupt metadata)")
        arrays = {}
        for name, dtype in _ARRAYS.items():
            node = group[name]
            if not isinstance(node, zarr.Array):
                raise CorruptRunRecordError(f"{where}: {name} is not an array (corrupt metadata)")
            values = np.asarray(node[...])
            check_array(digests, name, values, where)
            arrays[name] = np.array(values.tolist(), dtype=str) if dtype is str else values
        body = {key: value for key, value in attrs.items() if key not in ("array_digests",)}
        return SpotRunRecord(attrs=body, arrays=arrays)
    except MerPrepError:
        raise
    except Exception as error:  # whatever a damaged record fails with
        raise CorruptRunRecordError(
            f"{where}: the record does not decode ({first_line(error)}); run `mer-prep verify`"
        ) from error


def list_spot_runs(store) -> list[SpotRunRecord]:
    """Every spotting run recorded on ``store``, oldest first."""
    location, root = runs_root(store)
    if root is None:
        return []
    records = [
        _read(group, f"store {location}: spotting run {group.basename}")
        for group in run_groups(root, location, schema=SPOT_SCHEMA)
    ]
    return sorted(records, key=lambda r: (r.created, r.run_id))


def load_spot_run(store, run_id: str) -> SpotRunRecord:
    """One recorded spotting run by id."""
    location, root = runs_root(store)
    groups = run_groups(root, location, run_id, schema=SPOT_SCHEMA) if root is not None else []
    if not groups:
        raise RunRecordError(f"store {location} records no spotting run {run_id!r}")
    return _read(groups[0], f"store {location}: spotting run {run_id}")


def verify_spot_runs(store) -> list[BrokenChunk]:
    """One finding per spotting record that does not read back as written."""
    try:
        location, root = runs_root(store)
        groups = run_groups(root, location, schema=SPOT_SCHEMA) if root is not None else []
    except MerPrepError as error:
        return [BrokenChunk("runs", "(runs branch)", None, "", str(error))]
    broken = []
    for group in groups:
        try:
            _read(group, f"store {location}: spotting run {group.basename}")
        except MerPrepError as error:
            broken.append(BrokenChunk("runs", group.path, None, "", str(error)))
    return broken
