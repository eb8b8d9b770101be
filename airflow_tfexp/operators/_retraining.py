"""What training operators add for retraining: the warm-start source, the triggering data
events, and the run's lineage record. No TensorFlow here (the engine imports it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_tfexp.operators._base import is_templated

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_tfexp.experiment import Experiment

LATEST_BLESSED = "latest_blessed"
NO_WARM_START = "none"
SPEC_PARAM = "tfexp_spec"  # the factory's validated config, carried as a DAG param


def check_warm_start(warm_start_from: str | None, publish_dir: str | None) -> None:
    """Parse-time check: `latest_blessed` needs `publish_dir`; anything else is a path."""
    if warm_start_from is None or is_templated(warm_start_from):
        return
    if not isinstance(warm_start_from, str) or not warm_start_from.strip():
        raise ValueError(
            f"Invalid value for `warm_start_from`. Received: {warm_start_from!r}. Expected "
            f'"{LATEST_BLESSED}", "{NO_WARM_START}", or a checkpoint, model dir or export path.'
        )
    if warm_start_from == LATEST_BLESSED and not publish_dir:
        raise ValueError(
            f'`warm_start_from="{LATEST_BLESSED}"` needs `publish_dir`: the blessed models are '
            "the ones published there."
        )


def resolve_warm_start(
    warm_start_from: str | None, publish_dir: str | None, log: Any
) -> str | None:
    """The path to warm start from, or None (with the reason in the log)."""
    if warm_start_from in (None, "", NO_WARM_START):
        return None
    if warm_start_from != LATEST_BLESSED:
        return warm_start_from
    from airflow_tfexp.experiment.retraining.publishing import latest_published

    pointer = latest_published(publish_dir or "")
    if pointer is None:
        log.info("No model published in %s yet: training from scratch.", publish_dir)
        return None
    log.info(
        "Warm starting from the latest blessed model: version %s at %s.",
        pointer["version"],
        pointer["path"],
    )
    return pointer["path"]


def asset_events(context: Context) -> list[dict[str, Any]]:
    """The asset events that triggered this run, as plain JSON (newest last)."""
    events = []
    for asset, refs in dict(context.get("triggering_asset_events") or {}).items():
        for ref in refs:
            events.append(
                {
                    "uri": getattr(getattr(ref, "asset", None), "uri", None)
                    or getattr(asset, "uri", str(asset)),
                    "extra": dict(getattr(ref, "extra", None) or {}),
                    "timestamp": str(getattr(ref, "timestamp", "")),
                    "source_dag_id": getattr(ref, "source_dag_id", None),
                    "source_run_id": getattr(ref, "source_run_id", None),
                }
            )
    return sorted(events, key=lambda e: e["timestamp"])


def _spec(value: Any) -> Any:
    """The factory's runtime spec, carried as a JSON string."""
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value


def record_training_lineage(
    experiment: Experiment,
    context: Context,
    params: dict[str, Any],
    requested_warm_start: str | None,
    warm_started_from: str | None,
) -> None:
    """The sections of `run.json` the training step knows."""
    from airflow_tfexp.experiment.retraining.lineage import update_lineage

    run = context.get("dag_run")
    update_lineage(
        experiment.model_dir,
        {
            "dag_id": getattr(run, "dag_id", None),
            "run_id": getattr(run, "run_id", None),
            "config": _spec(params.get(SPEC_PARAM)),
            "params": {k: v for k, v in params.items() if k != SPEC_PARAM},
            "data_events": asset_events(context),
            "warm_start": {
                "requested": requested_warm_start,
                "source": warm_started_from,
            },
        },
    )
