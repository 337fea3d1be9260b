"""One home for the store format (issue 21 item 5): ``mer_prep.store.layout``'s typed root
attributes agree with ``storage_schemas/feature_store.v1.json`` both ways, the writer dumps the
model and the reader loads it, and a version written before the optional attributes still reads.
"""

import numpy as np
import pytest
import zarr
from test_store import fake_plan, fake_sample, make_plan, write_version

from mer_prep.evaluation.splits import KINDS, build_split
from mer_prep.store import open_store
from mer_prep.store.layout import (
    AUS_ARRAY,
    OPTIONAL_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    SPLIT_SCHEMA_NAME,
    SPLITS_GROUP,
    TABLE_GROUP,
    ArrayLayout,
    CorrectionAttrs,
    FailureAttrs,
    RecipeAttrs,
    ReuseAttrs,
    SmoteAttrs,
    SplitAttrs,
    VersionAttrs,
)
from mer_prep.store.repo import MAIN, open_repository
from mer_prep.store.schema import (
    DIGEST_KEY,
    SPLIT_SCHEMA_FILE,
    attrs_digest,
    load_schema,
    validate_attrs,
    zarr_rules,
)
from mer_prep.store.splits import save_split

SCHEMA = load_schema()
SPLIT_SCHEMA = load_schema(SPLIT_SCHEMA_FILE)


def _names(model) -> tuple[set[str], set[str]]:
    """(every attribute name the model writes, the names it requires), by stored name."""
    fields = model.model_fields.items()
    return ({f.alias or n for n, f in fields}, {f.alias or n for n, f in fields if f.is_required()})


def test_every_attribute_the_model_writes_is_declared_and_every_declared_one_modelled():
    written, _ = _names(VersionAttrs)
    assert written == set(SCHEMA["properties"])
    assert written == REQUIRED_ATTRIBUTES | OPTIONAL_ATTRIBUTES
    assert not REQUIRED_ATTRIBUTES & OPTIONAL_ATTRIBUTES


def test_the_required_attributes_agree_with_the_schema():
    assert REQUIRED_ATTRIBUTES == set(SCHEMA["required"])
    # schema and schema_version carry defaults in the model (the writer never spells them),
    # but every version has them: each is the constant the schema pins
    defaults = VersionAttrs.model_fields
    assert defaults["schema_"].default == SCHEMA["properties"]["schema"]["const"]
    assert defaults["schema_version"].default == SCHEMA["properties"]["schema_version"]["const"]


@pytest.mark.parametrize(
    "model, declared",
    [
        (RecipeAttrs, SCHEMA["properties"]["recipe"]),
        (ArrayLayout, SCHEMA["properties"]["arrays"]["additionalProperties"]),
        (FailureAttrs, SCHEMA["properties"]["failures"]["items"]),
        (CorrectionAttrs, SCHEMA["properties"]["corrections"]["items"]),
        (ReuseAttrs, SCHEMA["properties"]["reuse"]),
        (SplitAttrs, SPLIT_SCHEMA),
        (SmoteAttrs, SPLIT_SCHEMA["properties"]["smote"]["oneOf"][1]),
    ],
)
def test_nested_records_agree_with_the_schema(model, declared):
    written, required = _names(model)
    assert written == set(declared["properties"])
    assert required == set(declared["required"])


def test_group_names_are_the_schemas():
    rules = zarr_rules()
    assert TABLE_GROUP == rules["table_group"]
    assert AUS_ARRAY == rules["aus_array"]["name"]


def test_the_writer_dumps_the_model_and_the_reader_loads_it(tmp_path):
    plan = make_plan(tmp_path / "store", n=4)
    write_version(plan, failed={2})
    store = open_store(tmp_path / "store")
    info = store.info
    assert isinstance(info, VersionAttrs)
    # every stored attribute round-trips through the model unchanged (the digest still holds)
    assert info.to_attrs() == store.attrs
    assert store.attrs[DIGEST_KEY] == attrs_digest(info.to_attrs())
    validate_attrs(info.to_attrs())
    assert info.version_id == plan.version_id == info.inputs_version_id
    assert info.complete is True and info.is_complete
    assert info.recipe.hash == plan.recipe.hash and info.recipe.name == "mbcc64"
    assert info.n_samples == 4 and info.n_ok == 3
    assert info.arrays["frames"] == ArrayLayout(
        dims=["sample", "frame", "y", "x"], shape=[4, 2, 64, 64], dtype="float16"
    )
    assert info.reuse == ReuseAttrs(from_version=None, n_reused=0, n_recomputed=4, n_rows_reused=0)
    assert [f.kind for f in info.failures] == ["permanent"]
    assert TABLE_GROUP in store.group and AUS_ARRAY in store.group
    assert SPLITS_GROUP not in store.group


def test_a_version_without_the_optional_attributes_still_reads(tmp_path):
    """What a writer before au_list, corrections, reuse, failure kinds and the digests left."""
    plan = make_plan(tmp_path / "store", n=4)
    write_version(plan)
    repo = open_repository(tmp_path / "store")
    session = repo.writable_session(MAIN)
    root = zarr.open_group(session.store, mode="r+")
    old = {k: v for k, v in dict(root.attrs).items() if k not in OPTIONAL_ATTRIBUTES}
    old["failures"] = [{k: v for k, v in f.items() if k != "kind"} for f in old["failures"]]
    for key in list(root.attrs):
        del root.attrs[key]
    root.attrs.update(old)
    session.commit("as an older writer left it")
    store = open_store(tmp_path / "store")
    info = store.info
    assert info.au_list is None and info.reuse is None and info.table_digest is None
    assert info.complete is None and info.is_complete  # before the distinction: complete
    assert info.to_attrs() == {
        **old,
        "failures": [{**f, "kind": "permanent"} for f in old["failures"]],
    }
    assert store.version_id == plan.version_id and len(store.table) == 4
    assert list(store.failures["kind"]) == ["permanent"]
    assert store.au_list[:1] and store.aus.shape == (4, len(store.au_list))
    np.testing.assert_array_equal(store.labels, [1, 0, 1, 0])


def test_every_split_kind_the_library_makes_can_be_stored():
    """The schema once listed five of the seven kinds: ``mer-prep split --kind lodo`` (and
    dfme_official) were refused by the writer's schema check."""
    assert set(SPLIT_SCHEMA["properties"]["kind"]["enum"]) == set(KINDS)
    assert SPLIT_SCHEMA["properties"]["schema"]["const"] == SPLIT_SCHEMA_NAME


def _store_with_a_smote_split(path):
    """7 fake samples of 3 subjects (sub01: 2 happiness + 1 disgust clips) and their LOSO
    split with SMOTE on the landmarks, materialised: (the version's plan, the store)."""
    plan = make_plan(path, n=7)
    write_version(plan)
    store = open_store(path)
    save_split(
        store,
        build_split(store.table, "loso"),
        smote_features="landmarks",
        materialise=("landmarks",),
    )
    return plan, open_store(path)


def test_a_stored_split_reads_back_typed(tmp_path):
    plan, store = _store_with_a_smote_split(tmp_path / "store")
    info = store.split_info("loso")
    assert info.model_dump(by_alias=True) == store.split_attrs("loso")
    assert info.kind == "loso" and info.n_rows == 7 and info.version_id == plan.version_id
    assert info.fold_names == ["casme2/sub01", "casme2/sub02", "casme2/sub03"]
    # the folds without sub01 train on 3 happiness + 2 disgust: one synthetic disgust clip
    # each, interpolated with k = 1 (2 disgust inputs); leaving sub01 out is balanced
    assert info.smote == SmoteAttrs(
        features="landmarks", k_neighbors=1, seed=0, materialised=["landmarks"]
    )
    assert [len(store.smote("loso", fold)) for fold in info.fold_names] == [0, 1, 1]
    stored = store.materialised_smote("loso", 2, ["landmarks", "frames"])
    assert list(stored) == ["landmarks"] and stored["landmarks"].shape == (1, 68, 2)
    smote = store.smote("loso", 2)
    landmarks = store.array("landmarks")  # sample i holds i everywhere (test_store's arrays)
    parents = store.table["sample_id"].to_numpy()
    expected = landmarks[smote.parent_a] + smote.weight[:, None, None] * (
        landmarks[smote.parent_b] - landmarks[smote.parent_a]
    )
    assert parents[smote.parent_a].size == 1 and smote.label.tolist() == [0]  # disgust
    np.testing.assert_allclose(stored["landmarks"], expected, rtol=1e-6)
    assert info.schema_version == 2 and set(info.array_digests) >= {"test_fold", "class_weights"}
    assert store.split_info("megc2019") is None  # computed on demand: nothing stored


def test_a_leave_one_dataset_out_split_is_stored_and_read_back(tmp_path):
    """Refused by the split schema's kind list before it named lodo."""
    emotions = ["happiness", "disgust"]
    samples = [
        fake_sample(f"c{i}", f"{ds}/s{i % 2}", emotions[i % 2], dataset=ds)
        for ds in ("casme2", "samm")
        for i in range(4)
    ]
    plan = fake_plan(
        tmp_path / "store",
        samples,
        ["disgust", "happiness"],
        dataset="cross6",
        fingerprint="1" * 32,
    )
    write_version(plan)
    store = open_store(tmp_path / "store")
    save_split(store, build_split(store.table, "lodo"))
    store = open_store(tmp_path / "store")
    info = store.split_info("lodo")
    assert info.kind == "lodo" and info.fold_names == ["casme2", "samm"] and info.smote is None
    assert store.split("lodo").test_fold.tolist() == [0] * 4 + [1] * 4


def test_to_torch_makes_smote_samples_with_the_one_rebuild(tmp_path):
    """``to_torch(balance="smote")`` rebuilds a synthetic sample from its two parents (read as
    float32) with ``balance.rebuild_smote``, or takes the stored one when it was materialised."""
    pytest.importorskip("torch")
    _, store = _store_with_a_smote_split(tmp_path / "store")
    smote = store.smote("loso", 2)
    frames = store.array("frames", "float32")  # sample i holds i / 10 (float16) everywhere
    data = store.to_torch(2, arrays=["frames", "landmarks"], balance="smote")
    _, train, _, _ = store.fold("loso", 2)
    assert len(data) == len(train) + 1
    last = data[len(data) - 1]
    assert last["synthetic"] and last["row"] == -1 and int(last["label"]) == smote.label[0]
    a, b, w = smote.parent_a[0], smote.parent_b[0], smote.weight[0]
    np.testing.assert_allclose(
        last["frames"].numpy(), frames[a] + w * (frames[b] - frames[a]), rtol=1e-6
    )
    stored = store.materialised_smote("loso", 2, ["landmarks"])["landmarks"][0]
    assert last["landmarks"].numpy().tolist() == stored.tolist()
