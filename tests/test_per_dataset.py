"""Per-dataset scores inside a composite run, computed by hand: each dataset's clips pooled over
all folds (MEGC), then UF1 / UAR; the datasets read from the store version's sample table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from handmade_runs import make_run, table_of

from mer_prep.cli import main
from mer_prep.evaluation.per_dataset import per_dataset_scores, per_dataset_text
from mer_prep.evaluation.run_view import RunViewError, run_view

COMPOSITE = {
    "smic/s1": ([0, 1, 2], [0, 0, 2]),
    "smic/s2": ([0, 1], [1, 1]),
    "casme2/sub01": ([0, 0, 1, 2], [0, 0, 1, 2]),
    "samm/006": ([0, 2], [0, 0]),
}


def test_each_dataset_is_pooled_over_its_folds_then_scored():
    record = make_run("r", COMPOSITE)
    result = per_dataset_scores(run_view(record, table_of(record)))
    assert [r.name for r in result.rows] == ["casme2", "samm", "smic", "overall"]
    smic = result.row("smic")
    # pooled: true 0 -> (0, 1), true 1 -> (0, 1), true 2 -> 2: F1 (1/2, 1/2, 1), recall the same
    assert smic.confusion.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert smic.uf1 == pytest.approx(2 / 3, abs=1e-12) and smic.uar == pytest.approx(2 / 3)
    assert (smic.n, smic.n_subjects, smic.accuracy) == (5, 2, pytest.approx(3 / 5))
    # the per-fold mean would be (5/9 + 1/3) / 2 = 4/9: pooling is not averaging
    assert abs(smic.uf1 - 4 / 9) > 0.2
    casme2 = result.row("casme2")
    assert (casme2.uf1, casme2.uar, casme2.n) == (1.0, 1.0, 4)
    samm = result.row("samm")  # no positive clip: its F1 and recall are undefined, left out
    assert samm.per_class_f1 == {
        "negative": pytest.approx(2 / 3),
        "positive": None,
        "surprise": 0.0,
    }
    assert samm.uf1 == pytest.approx(1 / 3) and samm.uar == pytest.approx(1 / 2)
    overall = result.row("overall")
    assert overall.confusion.tolist() == [[4, 1, 0], [1, 2, 0], [1, 0, 2]]
    assert overall.uf1 == pytest.approx((8 / 11 + 2 / 3 + 4 / 5) / 3, abs=1e-12)
    assert overall.uar == pytest.approx(32 / 45, abs=1e-12)
    assert overall.uf1 == pytest.approx(record.uf1, abs=1e-12)  # as the record pooled it
    frame = result.frame()
    assert frame["n"].tolist() == [4, 2, 5, 11] and np.isnan(frame.loc[1, "f1_positive"])
    text = per_dataset_text(result).splitlines()
    assert text[3].split()[:6] == ["smic", "5", "2", "0.667", "0.667", "0.600"]


def test_datasets_need_the_sample_table_and_every_clip_in_it():
    record = make_run("r", COMPOSITE)
    with pytest.raises(Exception, match="source datasets are unknown"):
        per_dataset_scores(run_view(record))
    partial = table_of(record).iloc[1:]
    with pytest.raises(RunViewError, match="1 scored clip"):
        run_view(record, partial)


def test_the_command_reads_the_datasets_from_the_store_version_the_run_names(tmp_path):
    """A composite store (casme2 and samm subjects) and a hand-made record of its clips."""
    from test_store import make_plan, write_version

    from mer_prep.store import open_store
    from mer_prep.train.runs_store import save_run

    plan = make_plan(tmp_path / "s", n=6)
    samples = [
        dataclasses.replace(s, dataset="samm", subject=s.subject.replace("casme2", "samm"))
        if s.subject.endswith("03")
        else s
        for s in plan.samples
    ]
    write_version(dataclasses.replace(plan, samples=samples))
    store = open_store(tmp_path / "s")
    table = store.table
    assert sorted(set(table["dataset"])) == ["casme2", "samm"]
    label = {n: k for k, n in enumerate(store.class_names)}
    clips, ids = {}, {}
    for subject, part in table.groupby("subject", sort=True):
        y = [label[x] for x in part["label_name"]]
        # samm's clips all predicted as class 0, casme2's right
        clips[subject] = (y, [0] * len(y) if subject.startswith("samm") else y)
        ids[subject] = part["sample_id"].tolist()
    record = make_run(
        "mix",
        clips,
        classes=tuple(store.class_names),
        version=store.version_id,
        snapshot=store.session.snapshot_id,
        sample_ids=ids,
    )
    save_run(tmp_path / "s", record)
    result = CliRunner().invoke(main, ["per-dataset", str(tmp_path / "s"), "mix"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[2:]}
    samm_true = np.array([label[x] for x in table.loc[table["dataset"] == "samm", "label_name"]])
    assert rows["casme2"][1:5] == ["4", "2", "1.000", "1.000"]
    assert rows["samm"][1] == str(len(samm_true)) == "2"
    # samm: one clip of each class, both predicted class 0: F1 (2/3, 0), recall (1, 0)
    assert sorted(samm_true.tolist()) == [0, 1]
    assert rows["samm"][3:5] == ["0.333", "0.500"]
    assert rows["overall"][1] == "6"
