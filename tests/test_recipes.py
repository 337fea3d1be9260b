"""Recipes: typed, hashable, loadable from YAML; the hash moves with parameters, not prose."""

import pytest
import yaml
from pydantic import ValidationError

from mer_prep.recipes import Recipe, builtin_recipes, load_recipe


def test_builtin_recipes_have_the_papers_shapes():
    mbcc = load_recipe("mbcc64")
    assert mbcc.array_specs()["frames"] == (("frame", "y", "x"), (2, 64, 64), "float16")
    assert mbcc.needs_apex and mbcc.mask is None and mbcc.split is None
    ha3d = load_recipe("ha3d")
    specs = ha3d.array_specs()
    assert specs["frames"][1] == (16, 128, 128)
    assert specs["upper"][1] == (16, 64, 128) and specs["lower"][1] == (16, 64, 128)
    assert ha3d.mask.mode == "black_out" and set(ha3d.mask.regions) == {
        "left_eye",
        "right_eye",
        "mouth",
    }
    assert {"mbcc64", "ha3d", "msres3d", "dacwb3d"} <= set(builtin_recipes())


def test_motion_recipes_declare_keyframes_flow_and_strain(tmp_path):
    msres = load_recipe("msres3d")
    specs = msres.array_specs()
    assert msres.frames.mode == "keyframes" and msres.needs_apex and msres.apex.spot
    assert specs["frames"][1] == (16, 134, 134)
    assert specs["flow"] == (("frame", "y", "x", "uv"), (16, 134, 134, 2), "float16")
    assert specs["strain"][1] == (16, 134, 134)
    assert msres.magnify.alpha > 0 and msres.magnify.f_low < msres.magnify.f_high
    assert msres.parameters()["flow"]["lambda"] == msres.flow.lambda_ == 0.15
    # the YAML spelling "lambda" round-trips, and changing it changes the hash
    data = msres.parameters()
    data["flow"]["lambda"] = 0.3
    path = tmp_path / "stiffer.yaml"
    path.write_text(yaml.safe_dump({**data, "name": "msres3d"}))
    stiffer = load_recipe(path)
    assert stiffer.flow.lambda_ == 0.3 and stiffer.hash != msres.hash
    dacwb = load_recipe("dacwb3d")
    assert set(dacwb.array_specs()) == {"frames", "landmarks"} and not dacwb.needs_apex
    assert dacwb.mask.mode == "black_out" and dacwb.array_specs()["frames"][1] == (16, 128, 128)


def test_hash_depends_on_parameters_only(tmp_path):
    base = load_recipe("ha3d")
    reworded = base.model_copy(update={"description": "other words", "paper": "x"})
    assert reworded.hash == base.hash
    data = base.model_dump(mode="json")
    data["mask"]["margin"] = 5
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**data, "name": "mine"}))
    mine = load_recipe(path)
    assert mine.name == "mine" and mine.mask.margin == 5
    assert mine.hash != base.hash
    same = dict(base.model_dump(mode="json"))
    path.write_text(yaml.safe_dump(same))
    assert load_recipe(path).hash == base.hash


def test_invalid_recipes_are_refused(tmp_path):
    with pytest.raises(ValidationError):
        Recipe.model_validate(
            {
                "name": "x",
                "frames": {"mode": "onset_apex", "n_frames": 3},
                "align": {"size": [64, 64]},
            }
        )
    with pytest.raises(ValidationError):
        Recipe.model_validate(
            {
                "name": "x",
                "frames": {"mode": "sequence", "n_frames": 4},
                "align": {"size": [64, 64]},
                "unknown_key": 1,
            }
        )
    with pytest.raises(KeyError, match="unknown recipe"):
        load_recipe("nope")


def test_augmented_recipe_variants_follow_the_papers():
    for name, base in (("ha3d_aug", "ha3d"), ("dacwb3d_aug", "dacwb3d")):
        aug, plain = load_recipe(name), load_recipe(base)
        assert aug.array_specs() == plain.array_specs()  # the model reads the same arrays
        bounds = aug.augment
        assert (bounds.rotation_deg, bounds.crop, bounds.contrast) == (15, 0.1, 0.3)
        assert bounds.brightness > 0 and aug.rows_per_sample == 1 + bounds.copies
    msres = load_recipe("msres3d_aug")
    assert msres.array_specs() == load_recipe("msres3d").array_specs()
    assert msres.source_augment.shift_px == 15 and msres.rows_per_sample == 6
    # a recipe without the new section keeps its hash (stores made before stay up to date)
    assert "source_augment" not in load_recipe("msres3d").parameters()


def test_paper_004_counts_casme2_fear_and_sadness_as_negative():
    from mer_prep.labels import class_names, get_scheme

    scheme = get_scheme("dacwb3")
    rule = scheme.rules["casme2"]
    assert {rule.mapping[e] for e in ("fear", "sadness", "disgust", "repression")} == {"negative"}
    assert rule.mapping["happiness"] == "positive" and "others" in rule.drop
    assert class_names("dacwb3", "casme2") == ["negative", "positive", "surprise"]
    assert "fear" in get_scheme("megc3").rules["casme2"].drop  # MEGC drops them


@pytest.mark.parametrize("size", [[-64, 64], [0, 64], [64, 100000]])
def test_impossible_sizes_are_refused_when_the_recipe_loads(tmp_path, size):
    from mer_prep.errors import RecipeError

    values = load_recipe("mbcc64").model_dump(mode="json", by_alias=True)
    values["align"]["size"] = size
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(RecipeError, match=r"bad.yaml: align.size.\d: Input should be"):
        load_recipe(path)
    from click.testing import CliRunner

    from mer_prep.cli import main

    store = tmp_path / "store"
    result = CliRunner().invoke(
        main,
        ["run", "casme2", "--root", str(tmp_path), "--recipe", str(path), "--store", str(store)],
    )
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not store.exists()  # refused before anything was created
