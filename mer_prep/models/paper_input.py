"""What each paper fed its network, and how far a store's arrays may stray from it.

:class:`ArrayNeed` (registry) says what a model can *run* on; a :class:`PaperInput` says what it
was *designed* for. A 77 M-parameter 3-D ResNet built for 134x134x16 flow volumes runs on two
28x28 flow frames too (its strides and pools shrink the volume to nothing and it learns from a
few border pixels), so a run on such arrays would record a number that says nothing about the
paper's model. :func:`input_problem` refuses arrays whose spatial side differs from the paper's
by more than ``PaperInput.tolerance`` (a factor: 4 lets a 32x32 test store through for a 128x128
paper and stops a 28x28 one for 134x134) or that have fewer than ``min_frames`` frames per clip,
and names the recipe that makes the paper's input. A user recipe with the same arrays and
shapes fits: nothing here looks at recipe names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ArrayInfo = tuple[tuple[str, ...], tuple[int, ...]]


@dataclass(frozen=True)
class PaperInput:
    """The input of a paper's network, declared with its model.

    array: the stored array that carries it; size: (height, width) in pixels of one frame of
    that array as the paper used it; min_frames: frames per clip below which the model no
    longer does what the paper describes (1: single images); tolerance: the largest factor
    between the stored and the paper's side, either way; source: where the paper says it.
    """

    array: str
    size: tuple[int, int]
    min_frames: int = 1
    tolerance: float = 4.0
    source: str = ""

    def describe(self) -> str:
        """E.g. ``"flow of 134x134 pixels, at least 8 frames (003 Sec. 3)"``."""
        frames = f", at least {self.min_frames} frames" if self.min_frames > 1 else ""
        source = f" ({self.source})" if self.source else ""
        return f"{self.array} of {self.size[0]}x{self.size[1]} pixels{frames}{source}"

    def problem(self, arrays: Mapping[str, ArrayInfo]) -> str | None:
        """What makes ``arrays`` (name -> (dims, per-sample shape)) far from the paper's input,
        or None (also when the array is missing: :class:`ArrayNeed` reports that)."""
        if self.array not in arrays:
            return None
        dims, shape = arrays[self.array]
        length = dict(zip(dims, shape, strict=True))
        found = []
        for axis, paper in zip(("y", "x"), self.size, strict=True):
            name = axis if axis in length else f"{axis}_half"  # ha3d's halves: (y_half, x)
            side = length.get(name)
            if side is not None and not paper / self.tolerance <= side <= paper * self.tolerance:
                found.append(f"{name} = {side}")
        frames = length.get("frame")
        if frames is not None and frames < self.min_frames:
            found.append(f"frame = {frames}")
        if not found:
            return None
        return f"{self.array} with {', '.join(found)}"


def input_problem(
    model: str,
    paper_input: PaperInput | None,
    recipe: str,
    store_recipe: str,
    arrays: Mapping[str, ArrayInfo],
) -> str | None:
    """The one-line refusal for a store far from ``model``'s paper input, or None.

    recipe: the built-in recipe that makes the paper's input; store_recipe: the store's own.
    """
    if paper_input is None:
        return None
    problem = paper_input.problem(arrays)
    if problem is None:
        return None
    return (
        f"model {model} is built for {paper_input.describe()}; the store's recipe "
        f"{store_recipe} has {problem} (sides within {paper_input.tolerance:g}x of the "
        f"paper's fit, fewer frames do not): "
        f"preprocess with recipe {recipe} (`mer-prep run DATASET --recipe {recipe}`)"
    )
