"""Built-in recipes with a few parameters changed, as the store and training tests write them."""

from __future__ import annotations

from typing import Any

from mer_prep.recipes import load_recipe
from mer_prep.recipes.model import Recipe

#: Small augmentations (seed 1): rotations up to 5 degrees, brightness 5 %, contrast 10 %.
SMALL_AUGMENT = {"seed": 1, "rotation_deg": 5, "brightness": 0.05, "contrast": 0.1}


def recipe_with(base: str, **changes: Any) -> Recipe:
    """The built-in recipe ``base`` with ``changes`` to its parameters (by their YAML names)."""
    values = load_recipe(base).model_dump(mode="json", by_alias=True)
    values.update(changes)
    return Recipe.model_validate(values)


def mbcc64_augmented(copies: int = 1, name: str = "mbcc64aug") -> Recipe:
    """mbcc64 with ``copies`` augmented copies per clip (``SMALL_AUGMENT``), named ``name``."""
    return recipe_with("mbcc64", name=name, augment={"copies": copies, **SMALL_AUGMENT})
