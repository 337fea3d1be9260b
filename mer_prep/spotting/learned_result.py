"""The settings and results of the learned spotters, without torch: records and the CLI read
them without loading the networks (``learned_model``, ``learned_train`` import torch).

    settings = PRESETS["softnet"]                  # LearnedSettings: the paper's values
    result.folds[0].epochs, result.cache.curve(video, k, smooth)

A learned run is a :class:`~mer_prep.spotting.tuning.SpotResult` whose folds are
:class:`LearnedFold` s (the tuned spotting values plus the epoch count, the pair distances fed
to the network, and which training subjects fitted and which validated) and whose ``cache``
holds each video's learned score curve, so that records and timelines draw the curve the
test subject was spotted on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting_intervals import SpotPrediction
from mer_prep.spotting.spotters import SpotParams, smooth_curve
from mer_prep.spotting.tuning import SpotFold, SpotResult, SpotVideo, _Cache

OPTIMIZERS = ("sgd", "adam")
#: how the pair distance the score is learned at is found: every stored k tried on the
#: validation subjects, or SOFTNet's rule (the training subjects' mean expression length + 1,
#: halved, snapped to the nearest stored k)
K_RULES = ("tuned", "softnet")


@dataclass(frozen=True)
class LearnedSettings:
    """How a learned spotter is built and trained (one value per field; the epoch count used
    is chosen per fold, up to ``epochs``).

    - ``epochs``: the most epochs trained; ``batch_size`` windows per step; ``lr``,
      ``optimizer`` (``sgd`` / ``adam``) and ``momentum`` (SGD only);
    - ``window``: T, the pairs one sample sees, centred on its pair (odd);
    - ``widths``: filters of each stream's branch (cycled over the streams); ``hidden``: the
      dense layer's width;
    - ``negatives_per_positive``: per epoch, all windows labelled 1 and at most this many
      times as many labelled 0, drawn anew each epoch (None: every window);
    - ``multi_k``: False: the three streams at the spotted k only (SOFTNet-like); True: at
      every stored k, aligned by the pair's first frame (MTSN-like);
    - ``k_rule``: see :data:`K_RULES`; ``val_fraction``: the share of the training subjects
      held out to choose the epoch count, k and the spotting values (one subject at least);
    - ``floors``: the lowest score a spotted peak may have, tried on the validation subjects
      beside the grid's values (0: none, SOFTNet's relative threshold alone). The threshold
      ``mean + p (max - mean)`` is relative to the video: in a video without expressions it
      sits just above the noise, while a learned score has a scale of its own (1: the
      pseudo-label of an expression).
    """

    name: str
    epochs: int = 10
    batch_size: int = 12
    lr: float = 5e-4
    optimizer: str = "sgd"
    momentum: float = 0.0
    window: int = 9
    widths: tuple[int, ...] = (3, 5, 8)
    hidden: int = 400
    negatives_per_positive: float | None = None
    multi_k: bool = False
    k_rule: str = "tuned"
    val_fraction: float = 0.4
    floors: tuple[float, ...] = (0.0, 0.25, 0.5)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS or self.k_rule not in K_RULES:
            raise InvalidArgumentError(
                f"optimizer must be one of {OPTIMIZERS} and k_rule one of {K_RULES}, got "
                f"{self.optimizer!r} and {self.k_rule!r}"
            )
        if min(self.epochs, self.batch_size, self.hidden, *self.widths) < 1 or self.lr <= 0:
            raise InvalidArgumentError(f"{self.name}: epochs, sizes and lr must be positive")
        if self.window < 1 or self.window % 2 == 0:
            raise InvalidArgumentError(f"window must be odd and >= 1, got {self.window}")
        if not 0.0 < self.val_fraction < 1.0:
            raise InvalidArgumentError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.floors or not all(0.0 <= f < 1.0 for f in self.floors):
            raise InvalidArgumentError(f"floors must be in [0, 1), got {self.floors}")

    def as_dict(self) -> dict:
        values = asdict(self)
        values["widths"] = list(self.widths)
        values["floors"] = list(self.floors)
        return values


_QUICK = LearnedSettings(
    name="quick",
    epochs=8,
    batch_size=64,
    lr=2e-3,
    optimizer="adam",
    hidden=64,
    negatives_per_positive=3.0,
)

#: SOFTNet's values (SGD, lr 5e-4, batch 12, about 10 epochs, k from the mean expression
#: length, branches of 3 / 5 / 8 filters, a dense layer of 400), k's rule applied to the
#: training subjects only; the MTSN-like preset trains the same way on every stored k (its
#: own training values are not restated here: see docs/spotting.md); ``quick`` is a faster
#: schedule for CPU runs (Adam, batches of 64, negatives at most 3 per positive)
PRESETS: dict[str, LearnedSettings] = {
    "softnet": LearnedSettings(name="softnet", k_rule="softnet"),
    "mtsn": LearnedSettings(name="mtsn", multi_k=True),
    "quick": _QUICK,
    "quick-mtsn": replace(_QUICK, name="quick-mtsn", multi_k=True),
}


class CurveCache(_Cache):
    """The tuning cache over given curves: ``raw[(video key, k)]`` is a video's unsmoothed
    per-frame learned score (n_frames,) float32 at pair distance ``k``; smoothing, peaks and
    intervals are the training-free spotters' (``_Cache``), then intervals whose peak scores
    under ``floor`` are dropped."""

    def __init__(
        self,
        method: str,
        regions: Sequence[str],
        raw: Mapping[tuple[str, int], NDArray],
        floor: float = 0.0,
    ):
        super().__init__(method, regions)
        self.raw = dict(raw)
        self.floor = floor

    def spot(self, video: SpotVideo, params: SpotParams) -> tuple[SpotPrediction, ...]:
        found = super().spot(video, params)
        return tuple(p for p in found if (p.score or 0.0) >= self.floor)

    def curve(self, video: SpotVideo, k: int, smooth: int) -> np.ndarray:
        key = (video.key, k, smooth)
        if key not in self._curves:
            self._curves[key] = smooth_curve(self.raw[(video.key, k)], smooth)
        return self._curves[key]


@dataclass(frozen=True, eq=False)
class LearnedFold(SpotFold):
    """A learned spotter's fold: ``epochs`` trained for the test subject's model, ``ks`` the
    pair distances its input streams came from, ``fit_on`` / ``validated_on`` the training
    subjects the choice of epochs, k and spotting values was fitted on / scored on (all of
    them ``tuned_on``: the test subject is in none), ``floor`` the lowest peak score kept,
    ``val_f1`` the best validation F1 per (k, epoch) tried, and ``seed``."""

    epochs: int = 0
    ks: tuple[int, ...] = ()
    fit_on: tuple[str, ...] = ()
    validated_on: tuple[str, ...] = ()
    floor: float = 0.0
    val_f1: tuple[tuple[int, int, float], ...] = ()
    seed: int = 0


@dataclass(frozen=True, eq=False)
class LearnedSpotResult(SpotResult):
    """A learned run: ``settings`` and ``seed`` it was trained with, the data-path and
    training seconds (``timings``), and ``cache`` with every video's learned curve (from the
    fold it was tested in)."""

    settings: LearnedSettings | None = None
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    cache: CurveCache | None = field(default=None, repr=False)

    def training_view(self) -> dict:
        """What a record keeps of the training (JSON)."""
        assert self.settings is not None
        return {
            "settings": self.settings.as_dict(),
            "seed": self.seed,
            "timings_s": dict(self.timings),
        }
