"""The markdown report of one preprocessing run (what a Prefect artifact shows): version and tag,
samples processed / reused / failed per class and subject, timings per phase and stage, and,
once a version is committed, its class balance and a small contact sheet as embedded PNG images
(``mer_prep.plot.artifact``; the Prefect UI renders ``data:image/png`` markdown images)."""

from __future__ import annotations

from mer_prep.pipeline.summary import RunSummary
from mer_prep.store.writer import VersionPlan


def run_images(summary: RunSummary) -> str:
    """Markdown images of the version the run committed or found up to date (class balance, one
    sample per class); "" when there is none, a one-line note when they cannot be drawn (an
    artifact without pictures beats no artifact)."""
    if not summary.snapshot:
        return ""
    try:
        from mer_prep.plot.artifact import preprocess_images_markdown
        from mer_prep.store import open_store

        store = open_store(summary.store, summary.version_id)
        return preprocess_images_markdown(store) if len(store.table) else ""
    except Exception as error:  # noqa: BLE001 - pictures are never worth failing a run
        return f"_(images not drawn: {type(error).__name__}: {error})_\n"


def run_report(
    summary: RunSummary,
    rows: list[dict] | None,
    plan: VersionPlan,
    reused: set[int],
    *,
    images: bool = True,
) -> str:
    """Markdown: version and tag, samples processed / reused / failed per class and subject,
    timings per phase and stage; with ``images``, :func:`run_images`. ``rows`` None: nothing
    was written (up to date / no samples)."""
    counts: dict[str, dict[str, dict[str, int]]] = {"class": {}, "subject": {}}
    if rows is None:
        records = [(s.label or "(none)", s.subject, "reused") for s in plan.samples]
    else:
        records = [
            (
                r["label_name"] or "(none)",
                r["subject"],
                "failed" if r["status"] != "ok" else "reused" if i in reused else "processed",
            )
            for i, r in enumerate(rows)
            if not r["aug_parent"]
        ]
    for label, subject, outcome in records:
        for kind, value in (("class", label), ("subject", subject)):
            cell = counts[kind].setdefault(value, {"processed": 0, "reused": 0, "failed": 0})
            cell[outcome] += 1
    state = (
        "up to date (nothing recomputed, no new snapshot)" if summary.up_to_date else summary.state
    )
    lines = [
        f"# preprocess {summary.dataset} / {summary.recipe}",
        "",
        f"- store: `{summary.store}`",
        f"- version (tag): `{summary.version_id}` — {state}",
        f"- snapshot: `{summary.snapshot or 'none'}`",
        f"- samples: {summary.n_samples}, scan problems: {summary.n_scan_problems}",
        f"- recomputed: {summary.n_recomputed}, reused (skipped): {summary.n_reused}"
        + (f" from `{summary.reused_from}`" if summary.reused_from else ""),
        f"- failed: {summary.n_failed}",
        "",
    ]
    for kind in ("class", "subject"):
        lines += [f"| {kind} | processed | reused | failed |", "|---|---:|---:|---:|"]
        lines += [
            f"| {name} | {c['processed']} | {c['reused']} | {c['failed']} |"
            for name, c in sorted(counts[kind].items())
        ]
        lines.append("")
    timings = {
        **{f"phase {k}": v for k, v in summary.phase_seconds.items()},
        **{f"stage {k}": v for k, v in summary.stage_seconds.items()},
    }
    if timings:
        lines += ["| timing | seconds |", "|---|---:|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in timings.items()]
    if images:
        lines += ["", run_images(summary)]
    return "\n".join(lines) + "\n"
