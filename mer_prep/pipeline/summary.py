"""The summary of one preprocessing run: what the flow returns, the report renders and the CLI
prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from mer_prep.sample import Failure


@dataclass
class RunSummary:
    """One run of ``preprocess``: the version it made (or found up to date) and what it did.

    store: the store location as text. snapshot: None when nothing was committed (no samples).
    n_recomputed / n_reused: samples computed by this run / kept from ``reused_from``.
    stage_seconds: CPU seconds per stage summed over workers; phase_seconds: wall seconds of
    the flow's plan / layout / process / commit phases.
    """

    store: str
    version_id: str
    dataset: str
    recipe: str
    n_samples: int
    n_scan_problems: int
    artifact_key: str
    snapshot: str | None = None
    up_to_date: bool = False
    n_ok: int = 0
    n_failed: int = 0
    failures: list[Failure] = field(default_factory=list)
    n_recomputed: int = 0
    n_reused: int = 0
    reused_from: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def committed(self) -> bool:
        """True when this run wrote a new version."""
        return self.snapshot is not None and not self.up_to_date

    @property
    def state(self) -> str:
        return (
            "up to date"
            if self.up_to_date
            else "committed"
            if self.snapshot
            else "nothing to process"
        )
