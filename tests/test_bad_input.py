"""Bad input through the whole flow: bad samples are named, recorded, and do not stop the run."""

from pathlib import Path

import openpyxl
import pytest

from mer_prep.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(scope="module")
def broken_casme2(tmp_path_factory, synth_dataset):
    """A CASME II look-alike (3 subjects x 3 clips) with one fault of each kind planted in it
    (a private copy of the session's dataset)."""
    copy = tmp_path_factory.mktemp("broken")
    root, written = synth_dataset(
        "casme2", n_subjects=3, clips_per_subject=3, seed=5, n_frames=24, copy_to=copy
    )
    by_id = {w.sample_id: w for w in written}
    ids = sorted(by_id)
    truncated, missing, inverted = ids[0], ids[3], ids[6]

    onset_file = Path(
        by_id[truncated].frame_paths[by_id[truncated].onset - _first(by_id[truncated])]
    )
    data = onset_file.read_bytes()
    onset_file.write_bytes(data[: len(data) // 2])

    clip = by_id[missing]
    hole = Path(clip.frame_paths[(clip.onset + clip.offset) // 2 - _first(clip)])
    hole.unlink()

    sheet_path = next(root.glob("CASME2-coding-*.xlsx"))
    book = openpyxl.load_workbook(sheet_path)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    col = {name: header.index(name) + 1 for name in header}
    for row in range(2, sheet.max_row + 1):
        subject = sheet.cell(row, col["Subject"]).value
        clip = sheet.cell(row, col["Filename"]).value
        if f"casme2/sub{int(subject):02d}/{clip}" == inverted:
            onset = sheet.cell(row, col["OnsetFrame"]).value
            offset = sheet.cell(row, col["OffsetFrame"]).value
            sheet.cell(row, col["OnsetFrame"]).value = offset
            sheet.cell(row, col["OffsetFrame"]).value = onset
    sheet.append([1, "EP77_01", 10, 12, 20, "AU1", "happiness"])  # no such folder
    sheet.append([2, "../../etc", 1, 2, 3, "AU1", "happiness"])  # leaves the dataset root
    book.save(sheet_path)
    return (
        root,
        ids,
        {
            "truncated": (truncated, onset_file),
            "missing": (missing, hole),
            "inverted": (inverted, sheet_path),
        },
    )


def _first(written) -> int:
    return int(Path(written.frame_paths[0]).stem.removeprefix("img"))


def test_each_fault_is_named_recorded_and_the_rest_complete(broken_casme2, tmp_path):
    from flows.preprocess import run_preprocess

    root, ids, faults = broken_casme2
    store_path = tmp_path / "store"
    summary = run_preprocess("casme2", str(root), "ha3d", str(store_path), n_workers=2)
    assert not summary.up_to_date

    store = open_store(store_path)
    failures = store.failures
    by_sample = {row.sample_id: row for row in failures.itertuples()}

    truncated, frame_file = faults["truncated"]
    assert by_sample[truncated].stage == "process"
    relative = str(frame_file.relative_to(root))  # stores name files relative to the root
    assert by_sample[truncated].file == relative or relative in by_sample[truncated].message
    assert "truncat" in by_sample[truncated].message.lower()

    missing, hole = faults["missing"]
    assert missing in by_sample and by_sample[missing].stage == "scan"
    assert str(hole.name).split(".")[0].removeprefix("img") in by_sample[missing].message

    inverted, sheet = faults["inverted"]
    assert inverted in by_sample and sheet.name in by_sample[inverted].file
    assert "onset" in by_sample[inverted].message.lower()

    messages = " | ".join(f"{r.sample_id} {r.file} {r.message}" for r in failures.itertuples())
    assert "EP77_01" in messages
    assert "../../etc" in messages or "etc" in messages
    assert len(failures) == 5, messages

    healthy = sorted(set(ids) - {truncated, missing, inverted})
    assert sorted(store.table["sample_id"]) == healthy
    assert store.array("frames").shape == (len(healthy), 16, 128, 128)
    assert (store.table_all["status"] == "failed").sum() == 1  # the truncated one kept its row
