"""Tiny stores for the plotting and report tests, written in-process through the library (the
path the flow wires up: plan_version + VersionWriter + process_batch + combine_batches + finish).

Built-in recipes whose 134 px output makes them slow on two shared cores are shrunk (same
sections, smaller output) where the tests allow it; ``build_store`` takes either a recipe name
or a ``Recipe``.
"""

from __future__ import annotations

from pathlib import Path

from store_contents import SMALL_CASME2

from mer_prep.recipes import Recipe, load_recipe

#: 2 subjects x 2 clips at 240x320, 20 frames: every recipe's sections run, keyframes choose 16
#: of 20 frames, and one annotation in two has no apex (spotted where the recipe needs it).
TINY = {
    **SMALL_CASME2,
    "seed": 5,
    "n_frames": 20,
    "amplitude_px": (1.0, 2.0),
    "missing_apex": 0.5,
}


def small(builtin: str, size: int | None = None, **changes) -> Recipe:
    """Built-in recipe ``builtin`` with its output resized to ``size`` px (and other fields
    changed, e.g. ``name``): the same sections on fewer pixels."""
    recipe = load_recipe(builtin)
    data = recipe.model_dump(by_alias=True)
    if size is not None:
        data["align"] = {**data["align"], "size": (size, size)}
    data.update(changes)
    return Recipe.model_validate(data)


def build_store(
    root: Path,
    store_path: Path,
    recipe: Recipe | str,
    *,
    dataset: str = "casme2",
    labels: str = "native",
) -> Path:
    """Write one version of ``recipe`` over the dataset at ``root`` into ``store_path``."""
    from mer_prep.pipeline.local import commit_version

    commit_version(dataset, root, recipe, store_path, labels=labels)
    return store_path
