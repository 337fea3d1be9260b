"""``PreprocessRequest`` (every preprocessing parameter and its default once, checked when built)
and ``make_version`` (one sequence, any runner)."""

from __future__ import annotations

import pytest
from store_contents import SMALL_CASME2, assert_same, contents

from mer_prep.errors import (
    InvalidArgumentError,
    MerPrepError,
    UnknownDatasetError,
    UnknownLabelSchemeError,
    UnknownRecipeError,
)
from mer_prep.pipeline.request import PreprocessRequest

SMALL = SMALL_CASME2


@pytest.mark.parametrize(
    "change, error, words",
    [
        ({"dataset": "casme9"}, UnknownDatasetError, "unknown dataset 'casme9'"),
        ({"recipe": "nosuch"}, UnknownRecipeError, "unknown recipe 'nosuch'"),
        ({"labels": "nope"}, UnknownLabelSchemeError, "unknown label scheme 'nope'"),
        ({"options": {"variantt": "raw"}}, InvalidArgumentError, "no option 'variantt'"),
        (
            {"options": {"variant": "nosuch"}},
            InvalidArgumentError,
            "variant='nosuch' is not one of",
        ),
        ({"n_workers": 0}, InvalidArgumentError, "n_workers"),
        ({"n_workers": True}, InvalidArgumentError, "n_workers"),
        ({"n_workers": "2"}, InvalidArgumentError, "n_workers"),
        ({"progress": "yes"}, InvalidArgumentError, "progress"),
        ({"store": "out/{dataset.__class__}"}, InvalidArgumentError, "may only use {dataset}"),
        ({"recipe": 3}, InvalidArgumentError, "recipe"),
        ({"evil": 1}, InvalidArgumentError, "evil"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_a_bad_setting_is_refused_when_the_request_is_built(tmp_path, change, error, words):
    with pytest.raises(error) as refused:
        PreprocessRequest(**{"dataset": "casme2", "root": str(tmp_path), **change})
    assert isinstance(refused.value, MerPrepError) and words in str(refused.value)


def test_defaults_positional_values_and_the_file_system_checks(tmp_path):
    request = PreprocessRequest.from_arguments(
        "casme2", tmp_path, "mbcc64", tmp_path / "s", n_workers=1, options=None
    )
    assert request.model_dump() == {
        "dataset": "casme2",
        "root": str(tmp_path),
        "recipe": "mbcc64",
        "store": str(tmp_path / "s"),
        "labels": "native",
        "n_workers": 1,
        "options": {},
        "progress": False,
        "dask_address": None,
        "cluster": None,
    }
    assert PreprocessRequest(dataset="samm", root="r").store_location("ha3d") == "stores/samm/ha3d"
    assert (
        PreprocessRequest(
            dataset="samm", root="r", store="x/{recipe}-{dataset}", recipe="/a/b/mine.yaml"
        ).recipe_label
        == "mine"
    )
    with pytest.raises(InvalidArgumentError, match="given twice: root"):
        PreprocessRequest.from_arguments("casme2", tmp_path, root=tmp_path)
    with pytest.raises(MerPrepError, match="does not exist"):  # the root: only when asked
        PreprocessRequest(dataset="casme2", root=str(tmp_path / "gone")).check_inputs()
    with pytest.raises(ValueError, match="frozen"):  # a request is what was asked, start to end
        request.n_workers = 3  # type: ignore[misc]


def test_the_flow_parameters_are_the_request_fields_with_their_defaults():
    from flows.preprocess import preprocess

    schema = preprocess.parameters
    assert list(schema.properties) == list(PreprocessRequest.model_fields)
    assert sorted(schema.required) == ["dataset", "root"]
    for name, field in PreprocessRequest.model_fields.items():
        if not field.is_required():
            assert schema.properties[name]["default"] == PreprocessRequest.default(name), name
    assert schema.properties["recipe"]["type"] == "string"  # a name or a path, never a Recipe


def test_the_config_produces_the_request_its_deployments_run(tmp_path):
    from mer_prep.config import load_config

    (tmp_path / "CASME2").mkdir()
    path = tmp_path / "mer-prep.toml"
    path.write_text("""
[defaults]
n_workers = 3
labels = "megc3"

[datasets.casme2]
root = "CASME2"
recipes = ["mbcc64", "ha3d"]
options = { variant = "cropped" }
dask_address = "tcp://127.0.0.1:8786"
""")
    config = load_config(path)
    first = config.preprocess_request("casme2")
    assert first == PreprocessRequest(
        dataset="casme2",
        root=str(tmp_path / "CASME2"),
        recipe="mbcc64",
        store=str(tmp_path / "stores" / "{dataset}" / "{recipe}"),
        labels="megc3",
        n_workers=3,
        options={"variant": "cropped"},
        dask_address="tcp://127.0.0.1:8786",
    )
    deployments = config.deployments()
    assert [d.parameters for d in deployments] == [
        first.parameters(),
        first.model_copy(update={"recipe": "ha3d"}).parameters(),
    ]
    config.check_run(deployments[1].parameters)  # the policy allows what the config produces


class _Reversed:
    """An in-process runner that cuts the samples into one batch each and hands the results
    back last first (a cluster finishes batches in any order)."""

    outlives_run = False

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def batches(self, n_items: int) -> list[range]:
        return [range(i, i + 1) for i in range(n_items)]

    def submit(self, jobs):
        from mer_prep.pipeline.batch import process_batch

        self.sizes = [len(job.samples) for job in jobs]
        return iter([process_batch(job) for job in reversed(jobs)])


def test_one_sequence_gives_one_version_whatever_the_runner(tmp_path, synth_dataset):
    from mer_prep.pipeline.sequence import InProcess, RunState, make_version

    root, written = synth_dataset("casme2", **SMALL)
    results = {}
    for name, runner in (("one", InProcess()), ("each", _Reversed())):
        request = PreprocessRequest(
            dataset="casme2", root=str(root), recipe="mbcc64", store=str(tmp_path / name)
        )
        state = RunState()
        done = make_version(request, runner, state=state)
        assert done.writer is not None and state.submitted is done.writer
        assert done.summary.n_ok == len(written) and done.nothing_processed is None
        assert done.summary.store == state.location == str(tmp_path / name)
        assert set(done.summary.phase_seconds) == {"plan", "layout", "process", "commit"}
        results[name] = contents(tmp_path / name)
        again = make_version(request, runner)  # up to date: nothing begun
        assert again.writer is None and again.summary.up_to_date
    assert runner.sizes == [1] * len(written)
    assert_same(*results.values())


def test_no_samples_commits_nothing_and_says_why(tmp_path, synth_dataset):
    import shutil

    from mer_prep.datasets.casme2 import frames_dir
    from mer_prep.pipeline.sequence import InProcess, make_version

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    for subject in frames_dir(root, "raw").iterdir():  # the sheet stays; every clip is gone
        shutil.rmtree(subject)
    done = make_version(
        PreprocessRequest(dataset="casme2", root=str(root), store=str(tmp_path / "s")), InProcess()
    )
    assert done.writer is None and done.summary.snapshot is None
    assert done.nothing_processed.startswith(
        f"casme2: no samples found under {root} ({len(written)} scan problems"
    )
    assert not (tmp_path / "s").exists()
