"""One stored sample with its arrays read once (:class:`SampleView`), where its onset and apex
are among the stored frames, and which samples a contact sheet shows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mer_prep.plot.colour import display_scale
from mer_prep.recipes import Recipe

__all__ = ["SampleView", "sample_view", "pick_samples", "luma"]


@dataclass
class SampleView:
    """One ``table`` row of a store and its stored arrays."""

    row: int
    info: dict
    recipe: Recipe
    arrays: dict[str, np.ndarray]
    source_frames: np.ndarray
    onset_pos: int
    apex_pos: int
    apex_note: str
    copies: list[tuple[dict, dict[str, np.ndarray]]] = field(default_factory=list)
    #: display scale of the rasters (None: ``display_scale``, 64 px faces doubled)
    scale: float | None = None

    @property
    def sample_id(self) -> str:
        return str(self.info["sample_id"])

    @property
    def factor(self) -> float:
        return self.scale or display_scale(self.recipe.align.size[1])

    def frame(self, position: int) -> np.ndarray:
        """A stored frame as stored: (H, W), or (H, W, 3) for a ``channels: rgb`` recipe."""
        return np.asarray(self.arrays["frames"][position], dtype=np.float32)

    def gray_frames(self) -> np.ndarray:
        """Every stored frame as gray (T, H, W) float32: the BT.601 luma of colour frames, as
        the pipeline computes motion on."""
        return luma(np.asarray(self.arrays["frames"], dtype=np.float32))


def _positions(
    recipe: Recipe, info: dict, frames: np.ndarray, source_frames: np.ndarray
) -> tuple[int, int, str]:
    """(onset position, apex position, how the apex was found) in the stored frames."""
    n = frames.shape[0]
    if recipe.frames.mode == "onset_apex":
        source = info.get("apex_source") or "none"
        return 0, min(1, n - 1), f"apex {info.get('apex')} ({source})"
    onset = 0
    if len(source_frames) == n and info.get("onset") is not None:
        hits = np.flatnonzero(source_frames == int(info["onset"]))
        onset = int(hits[0]) if hits.size else int(np.argmin(np.abs(source_frames - info["onset"])))
    apex = info.get("apex")
    if apex is not None and len(source_frames) == n:
        pos = int(np.argmin(np.abs(source_frames - int(apex))))
        return onset, pos, f"apex {apex} ({info.get('apex_source') or 'annotated'})"
    change = np.abs(frames.astype(np.float32) - frames[onset].astype(np.float32)).mean(axis=(1, 2))
    return onset, int(np.argmax(change)), "no apex: frame of largest change from the onset"


def _info(table_row) -> dict:
    info = {key: table_row[key] for key in table_row.index}
    for key in ("onset", "apex", "offset"):
        value = info.get(key)
        info[key] = None if value is None or pd.isna(value) else int(value)
    return info


def sample_view(
    store, row: int, *, with_copies: bool = True, thumb: int | None = None
) -> SampleView:
    """The view of ``store.table`` row ``row`` (arrays read in one round trip); with
    ``with_copies`` its augmented copies are read too; ``thumb``: rasters wider than that many
    pixels are drawn as thumbnails of that width."""
    table = store.table
    info = _info(table.iloc[int(row)])
    recipe = store.recipe
    arrays = store.sample(int(row))
    frames = np.asarray(arrays["frames"])
    source_frames = np.asarray(info.get("source_frames") or [], dtype=np.int64)
    onset, apex, note = _positions(recipe, info, luma(frames), source_frames)
    copies = []
    if with_copies and "aug_parent" in table:
        parents = table["aug_parent"].to_numpy(dtype=str)
        for copy_row in np.flatnonzero(parents == info["sample_id"]):
            params = table["aug_params"].iloc[int(copy_row)] or {}
            copies.append((dict(params), store.sample(int(copy_row), ["frames", "landmarks"])))
    width = recipe.align.size[1]
    scale = thumb / width if thumb and width > thumb else None
    return SampleView(
        int(row), info, recipe, arrays, source_frames, onset, apex, note, copies, scale
    )


def luma(frames: np.ndarray) -> np.ndarray:
    """Frames (..., H, W) as they are, or (..., H, W, 3) RGB as BT.601 luma (..., H, W)."""
    if frames.ndim >= 3 and frames.shape[-1] == 3:
        return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return frames


def pick_samples(table, label: str | None = None, n: int = 4) -> list[int]:
    """Up to ``n`` original (not augmented) ``table`` rows of class ``label`` (all classes
    when None), taking subjects in turn so that one subject does not fill the sheet."""
    originals = table[table["aug_parent"].astype(str) == ""] if "aug_parent" in table else table
    if label is not None:
        originals = originals[originals["label_name"].astype(str) == str(label)]
    by_subject = [list(group.index) for _, group in originals.groupby("subject", sort=True)]
    rows: list[int] = []
    depth = 0
    while len(rows) < n and any(depth < len(g) for g in by_subject):
        rows += [g[depth] for g in by_subject if depth < len(g)][: n - len(rows)]
        depth += 1
    return [int(r) for r in rows]
