"""The sample table: one row per sample, the columns the schema requires, built from records."""

from __future__ import annotations

import json

import numpy as np

from mer_prep.sample import Sample
from mer_prep.store.schema import zarr_rules

MISSING = -1  # apex / label when there is none


def table_columns() -> dict[str, str]:
    """Column name -> kind (``str``, ``int64``, ``float64``, ``bool``), as the schema requires."""
    return dict(zarr_rules()["required_table_columns"])


def sample_row(
    sample: Sample,
    class_names: list[str],
    *,
    status: str = "ok",
    error: str = "",
    fingerprint: str = "",
    source_frames: list[int] | None = None,
    face_box: tuple[int, ...] | None = None,
    detector: str = "",
    detector_score: float = float("nan"),
    detector_confirmation: str = "",
    apex: int | None = None,
    apex_source: str | None = None,
    flow_error_px: float = 0.0,
    augmentation: tuple[int, dict] | None = None,
    failure_kind: str = "",
    content_crc: dict[str, int] | None = None,
) -> dict:
    """One table row for ``sample`` (processed or failed).

    content_crc: the CRC-32C of each stored array of the row (``content_crc32c`` column, JSON):
    the chunks' own checksums cannot tell one sample's chunk from another's, these can.
    failure_kind: for a failed row, ``permanent`` or ``transient`` (``Failure.kind``); ``""``
    for a processed one. ``partition``: the dataset's official part (``Sample.partition``,
    DFME's ``train``/``testA``/``testB``), ``""`` when it has none. The AUs as targets are the
    writer's ``aus`` array; the row keeps the raw ``action_units`` text.

    detector / detector_score / detector_confirmation: the cascade stage that found the face,
    its score (HOG margin, CNN or LBP confidence: ``FaceBox.score``; NaN without a box) and how
    a low-confidence box was confirmed (``FaceBox.confirmation``, ``""`` when it needed none).

    apex / apex_source: the apex the processing used (a spotted one) when it differs from the
    annotation; by default the annotated apex, or none. augmentation: ``(copy index,
    parameters)`` for an augmented copy: its id is ``<sample id>#aug<index>`` and it names
    ``sample`` as its parent.
    """
    label = class_names.index(sample.label) if sample.label in class_names else MISSING
    if apex_source is None:
        apex, apex_source = sample.apex, "none" if sample.apex is None else "annotated"
    return (
        {
            "sample_id": sample.sample_id,
            "dataset": sample.dataset,
            "subject": sample.subject,
            "clip": sample.clip,
            "label": label,
            "label_name": sample.label or "",
            "emotion": sample.emotion,
            "action_units": sample.action_units,
            "onset": sample.onset,
            "apex": MISSING if apex is None else apex,
            "offset": sample.offset,
            "apex_source": apex_source,
            "flow_error_px": float(flow_error_px),
            "fps": float(sample.fps),
            "n_frames": sample.n_frames,
            "source_frames": json.dumps(source_frames or []),
            "face_box": json.dumps(list(face_box) if face_box else []),
            "detector": detector,
            "detector_score": float(detector_score),
            "detector_confirmation": detector_confirmation,
            "status": status,
            "error": error,
            "fingerprint": fingerprint,
            "failure_kind": failure_kind if status != "ok" else "",
            "aug_parent": "",
            "aug_params": "{}",
            "synthetic": False,
            "partition": sample.partition,
            "content_crc32c": json.dumps(content_crc or {}),
        }
        if augmentation is None
        else {
            **sample_row(
                sample,
                class_names,
                status=status,
                error=error,
                fingerprint=fingerprint,
                source_frames=source_frames,
                face_box=face_box,
                detector=detector,
                detector_score=detector_score,
                detector_confirmation=detector_confirmation,
                apex=apex,
                apex_source=apex_source,
                flow_error_px=flow_error_px,
                failure_kind=failure_kind,
                content_crc=content_crc,
            ),
            "sample_id": f"{sample.sample_id}#aug{augmentation[0]}",
            "aug_parent": sample.sample_id,
            "aug_params": json.dumps(augmentation[1]),
        }
    )


def column_array(rows: list[dict], column: str, kind: str) -> np.ndarray:
    """The values of one column as the numpy array stored for it."""
    values = [row[column] for row in rows]
    if kind == "str":
        return np.array(values, dtype=object) if values else np.empty(0, dtype=object)
    return np.asarray(values, dtype=kind)
