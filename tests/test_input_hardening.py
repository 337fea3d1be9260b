"""Damaged or hostile input the first adapters let through: corrupt JPEG data, sheet names that
leave their subject's folder, merged spreadsheet cells, annotation tables not on the first sheet."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest
from layout_helpers import casme_sq_layout
from skimage import data
from synth_clips import by_id, clip, set_cell

from mer_prep.datasets import scan_dataset
from mer_prep.errors import AnnotationError, FrameReadError, MerPrepError
from mer_prep.face import read_frames
from mer_prep.synth.layouts import write_layout

# ---------------------------------------------------------------------------------------------
# 1. corrupt JPEG data decodes with only a warning on stderr: it must raise FrameReadError
# ---------------------------------------------------------------------------------------------

SAMPLE = "casme2/sub01/EP02_01f"


def _encode(image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90, *params])
    assert ok
    return buf.tobytes()


def _scan_start(jpeg: bytes) -> int:
    """Offset of the first byte of entropy-coded data (just past the first SOS segment)."""
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")


def _cut_mid_scan(jpeg: bytes) -> bytes:
    start = _scan_start(jpeg)
    return jpeg[: start + (len(jpeg) - start) // 2] + b"\xff\xd9"


def _garble(jpeg: bytes, count: int) -> bytes:
    damaged = bytearray(jpeg)
    middle = _scan_start(jpeg) + (len(jpeg) - _scan_start(jpeg)) // 2
    for k in range(middle, middle + count):
        damaged[k] ^= 0x5A
    return bytes(damaged)


@pytest.fixture(scope="module")
def jpegs() -> dict[str, bytes]:
    astronaut = data.astronaut()  # 512x512 RGB
    baseline = _encode(astronaut)
    restart = _encode(astronaut, cv2.IMWRITE_JPEG_RST_INTERVAL, 4)
    progressive = _encode(astronaut, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert restart.count(b"\xff\xd0") > 1 and progressive.count(b"\xff\xda") > 1
    return {
        "baseline": baseline,
        "restart markers": restart,
        "progressive": progressive,
        "zero padding after EOI": baseline + bytes(4096),
        "0xFF padding after EOI": baseline + b"\xff" * 300,
        "short trailer after EOI": baseline + b"trailer",
        # damaged
        "cut mid-scan + EOI": _cut_mid_scan(baseline),
        "cut mid-scan + EOI + padding": _cut_mid_scan(baseline) + bytes(1000),
        "cut mid-scan + EOI (restart markers)": _cut_mid_scan(restart),
        "cut mid-scan + EOI (progressive)": _cut_mid_scan(progressive),
        "garbled entropy data": _garble(baseline, 40),
        "one garbled byte": _garble(baseline, 1),
        "garbled entropy data (restart markers)": _garble(restart, 40),
        "garbled entropy data (progressive)": _garble(progressive, 40),
    }


VALID = [
    "baseline",
    "restart markers",
    "progressive",
    "zero padding after EOI",
    "0xFF padding after EOI",
    "short trailer after EOI",
]
CORRUPT = [
    "cut mid-scan + EOI",
    "cut mid-scan + EOI + padding",
    "cut mid-scan + EOI (restart markers)",
    "cut mid-scan + EOI (progressive)",
    "garbled entropy data",
    "one garbled byte",
    "garbled entropy data (restart markers)",
    "garbled entropy data (progressive)",
]


@pytest.mark.parametrize("gray", [False, True], ids=["rgb", "gray"])
@pytest.mark.parametrize("case", CORRUPT)
def test_corrupt_jpeg_data_raises_naming_file_and_sample(
    tmp_path: Path, jpegs: dict[str, bytes], case: str, gray: bool, capfd
) -> None:
    good, bad = tmp_path / "img1.jpg", tmp_path / "img2.jpg"
    good.write_bytes(jpegs["baseline"])
    bad.write_bytes(jpegs[case])
    with pytest.raises(FrameReadError) as info:
        read_frames([good, bad], gray=gray, sample=SAMPLE)
    error = info.value
    assert isinstance(error, MerPrepError)
    assert error.file == str(bad) and error.sample == SAMPLE
    message = str(error)
    assert "\n" not in message and str(bad) in message and SAMPLE in message
    assert "corrupt JPEG data" in message
    # the decoder's own warning is in the error, not left on stderr
    assert "Corrupt JPEG data" not in capfd.readouterr().err


@pytest.mark.parametrize("gray", [False, True], ids=["rgb", "gray"])
@pytest.mark.parametrize("case", VALID)
def test_valid_jpeg_variants_decode(
    tmp_path: Path, jpegs: dict[str, bytes], case: str, gray: bool
) -> None:
    path = tmp_path / "img1.jpg"
    path.write_bytes(jpegs[case])
    frames = read_frames([path], gray=gray, sample=SAMPLE)
    reference = cv2.imdecode(
        np.frombuffer(jpegs["baseline"], np.uint8),
        cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR_RGB,
    )
    assert frames.shape == (1, *reference.shape)
    # progressive/restart re-encodings differ by rounding only
    assert np.abs(frames[0].astype(int) - reference.astype(int)).mean() < 2


def test_decoding_in_threads_keeps_each_verdict_and_stderr(
    tmp_path: Path, jpegs: dict[str, bytes], capfd
) -> None:
    paths = {}
    for i, case in enumerate(VALID + CORRUPT):
        paths[case] = tmp_path / f"img{i}.jpg"
        paths[case].write_bytes(jpegs[case])

    def verdict(case: str) -> str:
        try:
            read_frames([paths[case]], gray=True)
        except FrameReadError:
            return "corrupt"
        return "ok"

    cases = (VALID + CORRUPT) * 4
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(verdict, cases))
    assert verdicts == ["ok" if c in VALID else "corrupt" for c in cases]
    # stderr goes where it went before
    print("still on stderr", file=sys.stderr, flush=True)
    os.write(2, b"fd 2 too\n")
    err = capfd.readouterr().err
    assert "still on stderr" in err and "fd 2 too" in err


def _verdict_in_child(path: str) -> str:
    try:
        read_frames([path])
    except FrameReadError as exc:
        return exc.problem
    return "ok"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_worker_detects_corrupt_jpeg_on_its_own(
    tmp_path: Path, jpegs: dict[str, bytes]
) -> None:
    import multiprocessing

    good, bad = tmp_path / "img1.jpg", tmp_path / "img2.jpg"
    good.write_bytes(jpegs["baseline"])
    bad.write_bytes(jpegs["garbled entropy data"])
    read_frames([good])  # the parent has its capture file before the fork
    with multiprocessing.get_context("fork").Pool(1) as pool:
        verdicts = pool.map(_verdict_in_child, [str(bad), str(good), str(bad)])
    assert verdicts[1] == "ok"
    assert verdicts[0] == verdicts[2] and verdicts[0].startswith("corrupt JPEG data")
    with pytest.raises(FrameReadError, match="corrupt JPEG data"):
        read_frames([bad])  # and the parent still does


def test_truncated_jpeg_without_end_marker_still_raises(
    tmp_path: Path, jpegs: dict[str, bytes]
) -> None:
    cut = tmp_path / "img1.jpg"
    cut.write_bytes(jpegs["baseline"][: len(jpegs["baseline"]) // 2] + bytes(200))
    with pytest.raises(FrameReadError, match="truncated"):
        read_frames([cut], sample=SAMPLE)


# ---------------------------------------------------------------------------------------------
# shared helpers for the spreadsheet cases
# ---------------------------------------------------------------------------------------------

# dataset: sheet file, subject folder under the frame root, sample-id prefix, Filename column
SHEETS = {
    "casme2": (
        "CASME2-coding-20140508.xlsx",
        "CASME2_RAW_selected/sub{s:02d}",
        "casme2/sub{s:02d}",
    ),
    "samm": ("SAMM_Micro_FACS_Codes_v2.xlsx", "{s:03d}", "samm/{s:03d}"),
    "casme1": ("CASME_A_Section_coding.xlsx", "Section A/sub{s:02d}", "casme1/sub{s:02d}"),
}
EMOTION = {"casme2": "disgust", "samm": "Anger", "casme1": "disgust"}


def _header(ws) -> tuple[int, dict[str, int]]:
    """(row, column name -> column) of the header row (the row holding 'Filename')."""
    for row in ws.iter_rows():
        names = {c.value: c.column for c in row if isinstance(c.value, str)}
        if "Filename" in names:
            return row[0].row, names
    raise AssertionError("no header")


def _add_front_sheet(xlsx: Path) -> None:
    book = openpyxl.load_workbook(xlsx)
    notes = book.create_sheet("Notes", 0)
    notes.append(["Read me first"])
    notes.append(["Subject", "numbers are participant numbers"])
    notes.append([None, "Frames are numbered from the start of the recording"])
    book.save(xlsx)


# ---------------------------------------------------------------------------------------------
# 2. a Filename may not leave its subject's folder
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
@pytest.mark.parametrize("dataset", sorted(SHEETS))
def test_filename_leaving_its_subject_folder_is_a_problem(
    tmp_path: Path, dataset: str, how: str
) -> None:
    sheet_name, folder_fmt, id_fmt = SHEETS[dataset]
    emotion = EMOTION[dataset]
    names = {
        1: {"casme2": "EP01_01", "samm": "001_1_1", "casme1": "EP01_1"}[dataset],
        2: {"casme2": "EP02_01", "samm": "002_1_1", "casme1": "EP02_1"}[dataset],
    }
    write_layout(
        dataset, tmp_path, [clip(1, emotion, clip=names[1]), clip(2, emotion, clip=names[2])]
    )
    sheet = tmp_path / sheet_name
    other = tmp_path / folder_fmt.format(s=1) / names[1]  # subject 1's clip
    if how == "relative":
        hostile = f"../{other.parent.name}/{names[1]}"
    elif how == "absolute":
        hostile = str(other)
    else:
        hostile = "EP99_link"
        (tmp_path / folder_fmt.format(s=2) / hostile).symlink_to(other, target_is_directory=True)
    row = set_cell(sheet, names[2], "Filename", hostile)  # a subject-2 row now points at it

    scan = scan_dataset(dataset, tmp_path)
    assert [s.sample_id for s in scan] == [f"{id_fmt.format(s=1)}/{names[1]}"]
    (problem,) = [p for p in scan.problems if p.file.startswith(f"{sheet}:{row}")]
    assert "leaves its subject folder" in problem.message
    assert id_fmt.format(s=2) in problem.sample_id and hostile in str(problem)
    assert "\n" not in str(problem)


def test_filename_that_is_a_path_inside_the_subject_is_a_problem(tmp_path: Path) -> None:
    # EP01_01/../EP02_01 stays inside sub01 but would give EP02_01 a second sample id
    write_layout(
        "casme2",
        tmp_path,
        [
            clip(1, "disgust", clip="EP01_01"),
            clip(1, "disgust", clip="EP02_01"),
            clip(1, "disgust", clip="EP03_01"),
        ],
    )
    sheet = tmp_path / SHEETS["casme2"][0]
    row = set_cell(sheet, "EP03_01", "Filename", "EP01_01/../EP02_01")
    scan = scan_dataset("casme2", tmp_path)
    assert sorted(s.sample_id for s in scan) == ["casme2/sub01/EP01_01", "casme2/sub01/EP02_01"]
    (problem,) = [p for p in scan.problems if p.file == f"{sheet}:{row}"]
    assert "is a path, not the name of a clip folder" in problem.message


def test_smic_clip_folder_linked_into_another_subject_is_a_problem(tmp_path: Path) -> None:
    written = write_layout("smic", tmp_path, [clip(1, "negative"), clip(2, "negative")])
    s01_clip = Path(written[0].frame_paths[0]).parent
    link = tmp_path / "HS" / "s02" / "micro" / "negative" / "s02_ne_09"
    link.symlink_to(s01_clip, target_is_directory=True)
    scan = scan_dataset("smic", tmp_path)
    assert sorted(s.sample_id for s in scan) == ["smic/s01/s01_ne_01", "smic/s02/s02_ne_01"]
    (problem,) = scan.problems
    assert problem.sample_id == "smic/s02/s02_ne_09" and problem.file == str(link)
    assert "leaves its subject folder" in problem.message


def test_casme_sq_video_folder_linked_into_another_subject_is_a_problem(tmp_path: Path) -> None:
    casme_sq_layout(tmp_path, (1, "negative", "anger1"), (2, "negative", "anger2"))
    rawpic = tmp_path / "rawpic"
    # s16 gets a link named like its anger1 video that points at s15's recording
    (rawpic / "s16" / "16_0401girlcrashing").symlink_to(
        rawpic / "s15" / "15_0401girlcrashing", target_is_directory=True
    )
    book = openpyxl.load_workbook(tmp_path / "CAS(ME)^2code_final.xlsx")
    book.worksheets[0].append([2, "anger1_1", 2, 4, 5, "", "negative", "micro-expression"])
    book.save(tmp_path / "CAS(ME)^2code_final.xlsx")
    scan = scan_dataset("casme-sq", tmp_path)
    assert sorted(s.sample_id for s in scan) == ["casme-sq/s15/anger1_1", "casme-sq/s16/anger2_1"]
    problems = by_id(scan.problems)
    assert "leaves its subject folder" in problems["casme-sq/s16/anger1_1"].message
    assert problems["casme-sq/s16/anger1_1"].file.endswith("CAS(ME)^2code_final.xlsx:3")


# ---------------------------------------------------------------------------------------------
# 3. merged cells apply to every row they span; an unreadable non-blank row is a Problem
# ---------------------------------------------------------------------------------------------


def _merge_runs(xlsx: Path, column: str, sheet: int = 0) -> int:
    """Merge the runs of equal values in ``column`` below the header, as people do; returns
    merges."""
    book = openpyxl.load_workbook(xlsx)
    ws = book.worksheets[sheet]
    header, names = _header(ws)
    col = names[column]
    merges, start = 0, header + 1
    for r in range(header + 2, ws.max_row + 2):
        if r > ws.max_row or ws.cell(r, col).value != ws.cell(start, col).value:
            if r - 1 > start:
                ws.merge_cells(start_row=start, end_row=r - 1, start_column=col, end_column=col)
                merges += 1
            start = r
    book.save(xlsx)
    return merges


@pytest.mark.parametrize("dataset", ["casme2", "samm"])
def test_merged_subject_cells_apply_to_every_row_they_span(tmp_path: Path, dataset: str) -> None:
    clips = [clip(s, EMOTION[dataset]) for s in (1, 1, 1, 2, 2, 2, 3, 3, 3)]
    written = write_layout(dataset, tmp_path, clips)
    sheet = tmp_path / SHEETS[dataset][0]
    assert _merge_runs(sheet, "Subject") == 3
    rows = list(openpyxl.load_workbook(sheet).worksheets[0].iter_rows(values_only=True))
    assert sum(1 for r in rows if r[0] is None and r[1]) == 6  # what openpyxl hands out
    scan = scan_dataset(dataset, tmp_path)
    assert scan.problems == []
    assert sorted(s.sample_id for s in scan) == sorted(w.sample_id for w in written)


def test_merged_emotion_and_subject_across_rows(tmp_path: Path) -> None:
    clips = [clip(1, "disgust"), clip(1, "disgust"), clip(2, "happiness"), clip(2, "happiness")]
    write_layout("casme2", tmp_path, clips)
    sheet = tmp_path / SHEETS["casme2"][0]
    _merge_runs(sheet, "Subject")
    _merge_runs(sheet, "Estimated Emotion")
    scan = scan_dataset("casme2", tmp_path)
    assert scan.problems == []
    assert (
        sorted((s.subject, s.emotion) for s in scan)
        == [("casme2/sub01", "disgust")] * 2 + [("casme2/sub02", "happiness")] * 2
    )


@pytest.mark.parametrize("dataset", ["casme2", "samm", "casme1"])
def test_non_blank_row_outside_the_read_columns_is_a_problem(tmp_path: Path, dataset: str) -> None:
    write_layout(dataset, tmp_path, [clip(1, EMOTION[dataset]), clip(2, EMOTION[dataset])])
    sheet = tmp_path / SHEETS[dataset][0]
    book = openpyxl.load_workbook(sheet)
    ws = book.worksheets[0]
    _, names = _header(ws)
    row = ws.max_row + 1
    ws.cell(row, max(names.values()) + 2).value = "clip withdrawn by the authors"
    book.save(sheet)
    scan = scan_dataset(dataset, tmp_path)
    assert len(scan.samples) == 2
    (problem,) = scan.problems
    assert problem.file == f"{sheet}:{row}"
    assert f"row {row}" in problem.sample_id and "clip withdrawn by the authors" in problem.message


def test_casme_sq_row_with_values_only_past_the_columns_is_a_problem(tmp_path: Path) -> None:
    write_layout("casme-sq", tmp_path, [clip(1, "negative", clip="anger1")])
    xlsx = tmp_path / "CAS(ME)^2code_final.xlsx"
    book = openpyxl.load_workbook(xlsx)
    book.worksheets[0].cell(5, 10).value = "recheck s15"
    book.save(xlsx)
    scan = scan_dataset("casme-sq", tmp_path)
    assert [s.sample_id for s in scan] == ["casme-sq/s15/anger1_1"]
    (problem,) = scan.problems
    assert problem.file == f"{xlsx}:5" and "recheck s15" in problem.message


# ---------------------------------------------------------------------------------------------
# 4. the annotation table is found by its header on whichever sheet holds it
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["casme2", "samm", "casme1"])
def test_extra_sheet_in_front_of_the_annotation_sheet(tmp_path: Path, dataset: str) -> None:
    clips = [clip(1, EMOTION[dataset]), clip(2, EMOTION[dataset]), clip(3, EMOTION[dataset])]
    written = write_layout(dataset, tmp_path, clips)
    sheet = tmp_path / SHEETS[dataset][0]
    _add_front_sheet(sheet)
    good = scan_dataset(dataset, tmp_path)
    assert good.problems == []
    assert sorted(s.sample_id for s in good) == sorted(w.sample_id for w in written)

    # problems on that sheet name the sheet as well as the row
    name = Path(written[1].frame_paths[0]).parent.name
    row = set_cell(sheet, name, "Filename", "EP77_01", sheet=1)
    bad = scan_dataset(dataset, tmp_path)
    problem = next(p for p in bad.problems if p.file.startswith(f"{sheet}:{row}"))
    title = openpyxl.load_workbook(sheet).worksheets[1].title
    assert f"sheet {title!r}" in problem.file and "does not exist" in problem.message


def test_no_sheet_with_the_header_names_the_closest_one(tmp_path: Path) -> None:
    write_layout("samm", tmp_path, [clip(6, "Anger")])
    sheet = tmp_path / SHEETS["samm"][0]
    _add_front_sheet(sheet)
    row = set_cell(sheet, "Onset Frame", "Onset Frame", "Start", sheet=1)
    with pytest.raises(AnnotationError) as err:
        scan_dataset("samm", tmp_path)
    assert (
        err.value.row == row
        and "onset" in str(err.value)
        and "FACS_Movement_Only" in str(err.value)
    )


def test_casme_sq_extra_sheet_in_front(tmp_path: Path) -> None:
    written = casme_sq_layout(tmp_path, (1, "negative", "anger1"), (2, "positive", "happy1"))
    xlsx = tmp_path / "CAS(ME)^2code_final.xlsx"
    _add_front_sheet(xlsx)
    scan = scan_dataset("casme-sq", tmp_path)
    assert scan.problems == []
    assert sorted(s.sample_id for s in scan) == sorted(w.sample_id for w in written)
