"""Which frames a recipe reads, and the fingerprint that covers exactly those frames."""

import numpy as np
import pytest

from mer_prep.errors import SampleError
from mer_prep.pipeline.fingerprint import dataset_fingerprint, sample_fingerprint
from mer_prep.pipeline.frame_selection import select_frames
from mer_prep.recipes import load_recipe
from mer_prep.sample import Problem, Sample


def clip(tmp_path, *, onset=46, apex=50, offset=60, first=40, last=70):
    numbers = tuple(range(first, last + 1))
    paths = []
    for n in numbers:
        path = tmp_path / f"img{n}.jpg"
        path.write_bytes(f"frame {n}".encode())
        paths.append(str(path))
    return Sample(
        dataset="casme2",
        subject="casme2/sub01",
        clip="EP01_01",
        frame_paths=tuple(paths),
        frame_numbers=numbers,
        onset=onset,
        apex=apex,
        offset=offset,
        fps=200.0,
        emotion="happiness",
        label="happiness",
        source="coding.xlsx:2",
    )


def test_onset_apex_reads_exactly_those_two(tmp_path):
    sample = clip(tmp_path)
    positions = select_frames(sample, load_recipe("mbcc64"))
    assert [sample.frame_numbers[i] for i in positions] == [46, 50]


def test_sequence_spans_onset_to_offset_evenly(tmp_path):
    sample = clip(tmp_path)
    numbers = [sample.frame_numbers[i] for i in select_frames(sample, load_recipe("ha3d"))]
    assert numbers[0] == 46 and numbers[-1] == 60 and len(numbers) == 16
    assert np.all(np.diff(numbers) >= 0) and np.all(np.diff(numbers) <= 1)
    short = clip(tmp_path, onset=46, apex=47, offset=49)
    numbers = [short.frame_numbers[i] for i in select_frames(short, load_recipe("ha3d"))]
    assert sorted(set(numbers)) == [46, 47, 48, 49] and len(numbers) == 16  # repeats, no invention


def test_missing_apex_reads_onset_to_offset_for_spotting_or_fails_when_spotting_is_off(tmp_path):
    mbcc = load_recipe("mbcc64")
    sample = clip(tmp_path, apex=None)
    assert [sample.frame_numbers[i] for i in select_frames(sample, mbcc)] == list(range(46, 61))
    no_spotting = mbcc.model_copy(update={"apex": mbcc.apex.model_copy(update={"spot": False})})
    with pytest.raises(SampleError, match="casme2/sub01/EP01_01.*annotation gives none"):
        select_frames(sample, no_spotting)


def test_keyframes_read_the_whole_clip(tmp_path):
    sample = clip(tmp_path)
    assert select_frames(sample, load_recipe("msres3d")).tolist() == list(range(31))


def test_bad_annotations_are_sample_errors_naming_the_sample(tmp_path):
    with pytest.raises(SampleError, match="onset 60 is after offset 46"):
        select_frames(clip(tmp_path, onset=60, offset=46), load_recipe("ha3d"))
    with pytest.raises(SampleError, match="apex frame 99 is not among the clip's frames"):
        select_frames(clip(tmp_path, apex=99), load_recipe("mbcc64"))


def test_fingerprint_covers_the_frames_read_and_nothing_else(tmp_path):
    sample = clip(tmp_path)
    recipe = load_recipe("mbcc64")
    before = sample_fingerprint(sample, recipe)
    assert sample_fingerprint(sample, recipe) == before
    (tmp_path / "img65.jpg").write_bytes(b"edited, but never read by mbcc64")
    assert sample_fingerprint(sample, recipe) == before
    # onset 46: face detection falls back to frames 47-49 when the onset frame shows no face
    (tmp_path / "img49.jpg").write_bytes(b"edited, read when the onset shows no face")
    assert sample_fingerprint(sample, recipe) != before
    before = sample_fingerprint(sample, recipe)
    (tmp_path / "img50.jpg").write_bytes(b"edited apex")
    assert sample_fingerprint(sample, recipe) != before
    relabelled = clip(tmp_path).with_label("surprise")
    assert sample_fingerprint(relabelled, recipe) != sample_fingerprint(clip(tmp_path), recipe)
    one = dataset_fingerprint(["a", "b"], [], "native")
    assert one == dataset_fingerprint(["b", "a"], [], "native")
    assert one != dataset_fingerprint(["a", "b"], [Problem("x", "f", "m")], "native")
    assert one != dataset_fingerprint(["a", "b"], [], "megc3")
