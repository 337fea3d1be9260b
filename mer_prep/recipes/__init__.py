"""Recipes: named, hashable configurations of the stages plus output sizes."""

from mer_prep.recipes.model import (
    AlignConfig,
    ArraySpec,
    AugmentConfig,
    DetectConfig,
    FrameSelection,
    MaskConfig,
    Recipe,
    SplitConfig,
    builtin_recipes,
    load_recipe,
)

__all__ = [
    "AlignConfig",
    "ArraySpec",
    "AugmentConfig",
    "DetectConfig",
    "FrameSelection",
    "MaskConfig",
    "Recipe",
    "SplitConfig",
    "builtin_recipes",
    "load_recipe",
]
