"""The ``spot`` flow: thin wiring of ``mer_prep.spotting`` (training-free spotting, tuned per
LOSO fold on training subjects only, recorded on the store's ``runs`` branch) with its Prefect
artifact: the scores, each fold's tuned values, per-video timelines and apex contact strips
from the store's aligned faces (``mer_prep.plot.spot_timeline.spot_run_markdown``). Spotting
is light (numpy over stored motion), so the flow runs it in its own process: no Dask cluster.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.served import refused_run
from mer_prep.plot.spot_timeline import spot_run_markdown
from mer_prep.spotting.run import spot_store, store_videos
from mer_prep.store.long_reader import stored_faces


def artifact_key(dataset: str, method: str) -> str:
    """``spot-<dataset>-<method>``, lower case, in the characters Prefect keys allow."""
    text = f"spot-{dataset}-{method}".lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text)


@flow(name="spot", log_prints=True)
def spot(
    store: str,
    method: str = "mdmd",
    split: str = "loso",
    tune_on_test: bool = False,
    dataset: str | None = None,
    seed: int = 0,
    preset: str | None = None,
    version: str | None = None,
):
    """Spot ``store``'s long videos with ``method``; the recorded run's id. ``version``: the
    store version to read (a tag; None: the latest; a trigger passes the committed one, so a
    run spots the version that started it even when a later refresh moved ``main``).
    ``dataset``: the configured long-video dataset whose store it is (a deployment run,
    ``spot/<dataset>``, is checked against ``mer-prep.toml`` first and refused, before any
    store access, when the file does not allow its parameters)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None and context.flow_run.deployment_id:
        parameters = {
            "dataset": dataset,
            "store": store,
            "method": method,
            "split": split,
            "tune_on_test": tune_on_test,
            "seed": seed,
            "preset": preset,
            "version": version,
        }
        refused = refused_run(parameters, flow="spot")
        if refused is not None:
            return refused
    source = store_videos(store, version)  # by this module's name: a test hands in its own
    _, info, _, record = spot_store(
        store,
        method,
        split=split,
        tune_on_test=tune_on_test,
        source=source,
        seed=seed,
        preset=preset,
    )
    try:
        create_markdown_artifact(
            markdown=spot_run_markdown(
                record, get_faces=stored_faces(store, record.attrs.get("store"))
            ),
            key=artifact_key(str(info.get("dataset", "store")), method),
            description=f"spotting run {record.run_id}",
        )
    except Exception as error:  # noqa: BLE001 - an artifact never fails a recorded run
        get_run_logger().warning("could not publish the spotting run's artifact: %s", error)
    return record.run_id
