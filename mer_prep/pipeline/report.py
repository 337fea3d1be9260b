"""The markdown report of one preprocessing run (what a Prefect artifact shows): version and tag,
samples processed / reused / failed per class and subject, timings per phase and stage."""

from __future__ import annotations

from mer_prep.pipeline.summary import RunSummary
from mer_prep.store.writer import VersionPlan


def run_report(summary: RunSummary, rows: list[dict] | None, plan: VersionPlan,
               reused: set[int]) -> str:
    """Markdown: version and tag, samples processed / reused / failed per class and subject,
    timings per phase and stage. ``rows`` None: nothing was written (up to date / no samples)."""
    counts: dict[str, dict[str, dict[str, int]]] = {"class": {}, "subject": {}}
    if rows is None:
        records = [(s.label or "(none)", s.subject, "reused") for s in plan.samples]
    else:
        records = [(r["label_name"] or "(none)", r["subject"],
                    "failed" if r["status"] != "ok" else "reused" if i in reused else "processed")
                   for i, r in enumerate(rows) if not r["aug_parent"]]
    for label, subject, outcome in records:
        for kind, value in (("class", label), ("subject", subject)):
            cell = counts[kind].setdefault(value, {"processed": 0, "reused": 0, "failed": 0})
            cell[outcome] += 1
    state = ("up to date (nothing recomputed, no new snapshot)" if summary.up_to_date
             else summary.state)
    lines = [f"# preprocess {summary.dataset} / {summary.recipe}", "",
             f"- store: `{summary.store}`",
             f"- version (tag): `{summary.version_id}` — {state}",
             f"- snapshot: `{summary.snapshot or 'none'}`",
             f"- samples: {summary.n_samples}, scan problems: {summary.n_scan_problems}",
             f"- recomputed: {summary.n_recomputed}, reused (skipped): {summary.n_reused}"
             + (f" from `{summary.reused_from}`" if summary.reused_from else ""),
             f"- failed: {summary.n_failed}", ""]
    for kind in ("class", "subject"):
        lines += [f"| {kind} | processed | reused | failed |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {c['processed']} | {c['reused']} | {c['failed']} |"
                  for name, c in sorted(counts[kind].items())]
        lines.append("")
    timings = {**{f"phase {k}": v for k, v in summary.phase_seconds.items()},
               **{f"stage {k}": v for k, v in summary.stage_seconds.items()}}
    if timings:
        lines += ["| timing | seconds |", "|---|---:|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in timings.items()]
    return "\n".join(lines) + "\n"
