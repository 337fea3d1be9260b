"""A clip with no face fails as "no face found" instead of being stored as a face; the sample
table records each face's detection score and confirmation, and ``info`` / ``show`` list the
low-confidence faces (also in stores written before confirmation, where they were unconfirmed).
"""

from __future__ import annotations

import math
import pickle

import cv2
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from test_store import fake_plan, fake_sample, sample_arrays

from mer_prep.cli import main
from mer_prep.datasets import scan_dataset
from mer_prep.plot.report import _low_confidence, low_confidence_html
from mer_prep.recipes import load_recipe
from mer_prep.store import open_store
from mer_prep.store.repo import MAIN, StoreLocation, open_repository
from mer_prep.store.schema import validate_group
from mer_prep.store.table import sample_row
from mer_prep.store.writer import SampleWriter, VersionWriter
from mer_prep.synth.nonfaces import nonface_clip

# (detector, score, confirmation) of three processed samples
DETECTIONS = [("hog", 1.2, ""), ("hog-low", -0.3, "cnn 1.01 IoU 0.81"), ("cnn@+1", 1.03, "")]


def _write(path) -> None:
    samples = [
        fake_sample(f"EP0{i}_01", "casme2/sub01", "happiness") for i in range(len(DETECTIONS))
    ]
    plan = fake_plan(path, samples, ["happiness"])
    writer = VersionWriter.begin(plan)
    try:
        fork = pickle.loads(pickle.dumps(writer.fork()))
        sample_writer = SampleWriter(fork, plan.arrays)
        rows = []
        for i, (sample, (detector, score, confirmation)) in enumerate(
            zip(samples, DETECTIONS, strict=True)
        ):
            crc = sample_writer.write(i, sample_arrays(i))
            rows.append(
                sample_row(
                    sample,
                    plan.class_names,
                    fingerprint=plan.fingerprints[i],
                    content_crc=crc,
                    face_box=(1, 2, 3, 4),
                    detector=detector,
                    detector_score=score,
                    detector_confirmation=confirmation,
                )
            )
        writer.finish([fork], rows, [])
    except BaseException:
        writer.abort()
        raise


def test_the_table_records_score_and_confirmation_and_info_lists_low_confidence(tmp_path):
    _write(tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert list(store.table["detector_score"]) == [d[1] for d in DETECTIONS]
    assert list(store.table["detector_confirmation"]) == [d[2] for d in DETECTIONS]
    result = CliRunner().invoke(main, ["info", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert (
        "low-confidence faces: 1\n  casme2/sub01/EP01_01 hog-low score -0.300: confirmed by "
        "cnn 1.01 IoU 0.81\n" in result.output
    )
    rows = _low_confidence(store.table)
    assert [(r.sample_id, r.confirmation) for r in rows] == [
        ("casme2/sub01/EP01_01", "cnn 1.01 IoU 0.81")
    ]
    html = low_confidence_html(store.table)
    assert "casme2/sub01/EP01_01" in html and "cnn 1.01 IoU 0.81" in html
    assert "EP00_01" not in html and "EP02_01" not in html


def test_a_store_written_before_confirmation_stays_valid_and_flags_its_low_boxes(tmp_path):
    _write(tmp_path / "s")
    session = open_repository(StoreLocation.parse(tmp_path / "s")).writable_session(MAIN)
    root = zarr.open_group(session.store, mode="r+")
    added = ("detector_score", "detector_confirmation")
    for column in added:
        del root["samples"][column]
    attrs = dict(root.attrs)
    for key in ("attrs_digest", "table_digest"):
        attrs.pop(key)
    attrs["table_columns"] = {k: v for k, v in attrs["table_columns"].items() if k not in added}
    root.attrs.put(attrs)
    session.commit("as written before detection confirmation")
    old = open_store(tmp_path / "s")
    validate_group(old.group)
    assert "detector_score" not in old.table.columns
    result = CliRunner().invoke(main, ["info", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert (
        "  casme2/sub01/EP01_01 hog-low score nan: UNCONFIRMED (store written before confirmation)"
    ) in result.output
    assert "unconfirmed" in low_confidence_html(old.table)


@pytest.mark.slow
def test_a_clip_of_no_face_is_a_recorded_failure_not_a_stored_face(synth_dataset, tmp_path):
    from mer_prep.pipeline.local import commit_version

    root, _ = synth_dataset(
        "casme2", n_subjects=1, clips_per_subject=2, n_frames=12, seed=3, copy_to=tmp_path / "data"
    )
    samples = scan_dataset("casme2", root).samples
    target = samples[0]
    shape = cv2.imread(target.frame_paths[0], cv2.IMREAD_GRAYSCALE).shape
    # a motorcycle that the cascade of old stored as a face (hog-low, score -0.23)
    frame = nonface_clip("photo:motorcycle_left", seed=0, size=shape).frames[0]
    for path in target.frame_paths:
        cv2.imwrite(path, np.dstack([frame] * 3))
    commit_version("casme2", root, load_recipe("mbcc64"), tmp_path / "store")
    store = open_store(tmp_path / "store")
    rows = store.table_all.set_index("sample_id")
    failed = rows.loc[target.sample_id]
    assert failed["status"] == "failed" and "no face found" in failed["error"]
    assert list(store.failures["sample_id"]) == [target.sample_id]
    ok = rows.loc[samples[1].sample_id]
    assert ok["status"] == "ok" and ok["detector"] == "hog" and ok["detector_score"] >= 0.5
    assert math.isnan(failed["detector_score"]) and failed["detector_confirmation"] == ""
