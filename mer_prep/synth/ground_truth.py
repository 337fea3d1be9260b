"""Ground truth of synthetic clips: what moved, where, when, and by how much.

Stored beside the dataset, never inside it: for a dataset root ``.../CASME2`` the truth lives in
``.../_ground_truth/CASME2/`` as one compressed ``<sample id with / -> __>.npz`` per clip plus
``manifest.json`` (sample id -> file and the clip's scalar facts).

Frame indices here are 0-based positions in the sample's ``frame_paths`` as the dataset adapter
reports them (for SMIC and CAS(ME)^2 these are the onset..offset frames only); ``*_number``
fields use the dataset's own frame numbering. Motion follows ``mer_prep.synth.motion``: the
neutral-face point at canvas position ``x`` (pixel centres on integers, ``(dx, dy)`` order) is
seen at ``x + a(t) D(x) + j(t)`` in frame ``t``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mer_prep.synth.motion import FieldSampler, invert_motion

__all__ = [
    "ClipTruth",
    "ground_truth_dir",
    "save_ground_truth",
    "load_ground_truth",
    "load_manifest",
    "TRUTH_DIRNAME",
]

TRUTH_DIRNAME = "_ground_truth"
_ARRAYS = ("field", "profile", "jitter", "placement", "source_landmarks", "neutral_landmarks")


@dataclass(frozen=True, eq=False)
class ClipTruth:
    """Everything known about one synthetic clip.

    field: (H, W, 2) float32 D at apex (px); profile: (T,) float64 a(t); jitter: (T, 2)
    float64 j(t) (px); onset/apex/offset: 0-based true indices (the apex is always known, even
    where the annotation omits it); onset_number/apex_number/offset_number: as annotated in the
    dataset numbering (apex_number None where the annotation has none); first_number: dataset
    number of frame 0 (frames are numbered consecutively). placement: (2, 3) float64 affine,
    identity-warped source px -> canvas px; identity_warp: the ``faces.IdentityWarp`` fields;
    source_landmarks: (68, 2) dlib points on the source photo; neutral_landmarks: (68, 2) the
    same on the canvas (dlib order, mirroring undone), before motion and jitter; neutral_box:
    the source's dlib box mapped to the canvas (left, top, right, bottom). noise_sigma: grey
    levels; amplitude_px: max |D|; emotion: the annotated class; motion_class: the class whose
    AUs (``action_units``) drive the motion (CAS(ME)^2: the elicitation, e.g. ``anger``).
    """

    sample_id: str
    dataset: str
    subject: str
    emotion: str
    motion_class: str
    action_units: str
    fps: float
    onset: int
    apex: int
    offset: int
    onset_number: int
    apex_number: int | None
    offset_number: int
    first_number: int
    amplitude_px: float
    noise_sigma: float
    gray: bool
    mirrored: bool
    identity_warp: dict
    neutral_box: tuple[float, float, float, float]
    seed: int
    field: np.ndarray = dataclasses.field(repr=False)
    profile: np.ndarray = dataclasses.field(repr=False)
    jitter: np.ndarray = dataclasses.field(repr=False)
    placement: np.ndarray = dataclasses.field(repr=False)
    source_landmarks: np.ndarray = dataclasses.field(repr=False)
    neutral_landmarks: np.ndarray = dataclasses.field(repr=False)
    frame_paths: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        return len(self.profile)

    @property
    def size(self) -> tuple[int, int]:
        """Canvas (H, W)."""
        return self.field.shape[0], self.field.shape[1]

    def number(self, t: int) -> int:
        """Dataset frame number of 0-based frame ``t``."""
        return self.first_number + t

    def index(self, number: int) -> int:
        """0-based frame index of dataset frame ``number``."""
        return number - self.first_number

    def displacement(self, t: int) -> np.ndarray:
        """Forward motion of each neutral-face point (H, W, 2) float32: ``a(t) D + j(t)``.

        Sampled at the neutral positions; frame ``t`` shows ``x + displacement(t)[x]``.
        """
        return (self.profile[t] * self.field + self.jitter[t].astype(np.float32)).astype(np.float32)

    def flow(self, t_from: int, t_to: int) -> np.ndarray:
        """Exact optical flow from frame ``t_from`` to frame ``t_to``: (H, W, 2) float32.

        On frame ``t_from``'s pixel grid, as OpenCV flows are: the scene point at pixel ``q`` of
        ``t_from`` is at ``q + flow[q]`` in ``t_to`` (``frame_to(q + f) ~ frame_from(q)``).
        """
        h, w = self.size
        qx, qy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        sampler = FieldSampler(self.field)
        p = invert_motion(
            sampler, float(self.profile[t_from]), self.jitter[t_from], qx, qy, tol=1e-7
        )
        moved = p + float(self.profile[t_to]) * sampler(p[..., 0], p[..., 1]) + self.jitter[t_to]
        return (moved - np.stack([qx, qy], axis=-1)).astype(np.float32)

    def landmarks(self, t: int) -> np.ndarray:
        """The 68 landmarks in frame ``t``: (68, 2) float64 canvas px, dlib order.

        Neutral landmarks carried by the expression and the jitter: ``L + a(t) D(L) + j(t)``.
        """
        lm = self.neutral_landmarks
        moved = FieldSampler(self.field, margin=0)(lm[:, 0], lm[:, 1])
        return lm + self.profile[t] * moved + self.jitter[t]

    def face_box(self, t: int | None = None) -> tuple[float, float, float, float]:
        """Expected HOG face box (left, top, right, bottom) in frame ``t`` (default the onset):
        the neutral box moved by the jitter (the expression is too small to move it)."""
        jx, jy = self.jitter[self.onset if t is None else t]
        left, top, right, bottom = self.neutral_box
        return float(left + jx), float(top + jy), float(right + jx), float(bottom + jy)

    def meta(self) -> dict:
        """The JSON-able scalar facts (no arrays)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _ARRAYS}


def ground_truth_dir(root: Path) -> Path:
    """Where the truth of the dataset at ``root`` lives: ``root.parent/_ground_truth/root.name``."""
    root = Path(root).resolve()
    return root.parent / TRUTH_DIRNAME / root.name


def _file_name(sample_id: str) -> str:
    return sample_id.replace("/", "__") + ".npz"


def save_ground_truth(root: Path, truths: list[ClipTruth], *, replace: bool = False) -> Path:
    """Write one ``.npz`` per clip and merge them into ``manifest.json``; returns the folder.

    replace: first delete whatever truth the folder holds (a dataset written anew).
    """
    folder = ground_truth_dir(root)
    if replace and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(root) if (folder / "manifest.json").is_file() else {"clips": {}}
    for truth in truths:
        meta = truth.meta()
        arrays = {name: getattr(truth, name) for name in _ARRAYS}
        np.savez_compressed(folder / _file_name(truth.sample_id), meta=json.dumps(meta), **arrays)
        manifest["clips"][truth.sample_id] = {
            "file": _file_name(truth.sample_id),
            **{k: v for k, v in meta.items() if k not in ("frame_paths", "identity_warp")},
        }
    manifest.update(
        version=1,
        dataset_root=str(Path(root).resolve()),
        convention="frame t shows neutral point x at x + a(t) D(x) + j(t); (dx, dy)",
    )
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(folder / "manifest.json")
    return folder


def load_manifest(root: Path) -> dict:
    """The parsed ``manifest.json`` of the dataset at ``root``."""
    path = ground_truth_dir(root) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no synthetic ground truth for {root}: {path} is missing")
    return json.loads(path.read_text())


def load_ground_truth(root: Path, sample_id: str) -> ClipTruth:
    """The truth of clip ``sample_id`` (as the adapter names it, ``casme2/sub01/EP02_01f``)."""
    path = ground_truth_dir(root) / _file_name(sample_id)
    if not path.is_file():
        raise KeyError(f"no ground truth for sample {sample_id!r} under {path.parent}")
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {name: data[name] for name in _ARRAYS}
    meta["frame_paths"] = tuple(meta["frame_paths"])
    meta["neutral_box"] = tuple(meta["neutral_box"])
    return ClipTruth(**meta, **arrays)
