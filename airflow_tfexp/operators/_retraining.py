"""What training operators add for retraining: the warm-start source and the run's lineage
record. No TensorFlow here (the engine imports it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_tfexp._airflow import asset_events, is_templated
from airflow_tfexp.names import LATEST_BLESSED, NO_WARM_START, SPEC_PARAM

if TYPE_CHECKING:
    from airflow.sdk import Context


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
    from airflow_tfexp.operators._ownership import check_inside_roots

    if not isinstance(pointer.get("path"), str):
        raise ValueError(f"The LATEST pointer in {publish_dir} names no path: {pointer!r}.")
    check_inside_roots(pointer["path"], "the latest blessed model (publish_dir/LATEST)")
    log.info(
        "Warm starting from the latest blessed model: version %s at %s.",
        pointer["version"],
        pointer["path"],
    )
    return pointer["path"]


def record_training_lineage(
    model_dir: str,
    context: Context,
    params: dict[str, Any],
    requested_warm_start: str | None,
    warm_started_from: str | None,
) -> None:
    """The sections of `run.json` the training step knows."""
    from airflow_tfexp.experiment.retraining.lineage import update_lineage

    run = context.get("dag_run")
    spec = params.get(SPEC_PARAM)  # the factory's runtime spec, carried as a JSON string
    update_lineage(
        model_dir,
        {
            "dag_id": getattr(run, "dag_id", None),
            "run_id": getattr(run, "run_id", None),
            "config": json.loads(spec) if isinstance(spec, str) else spec,
            "params": {k: v for k, v in params.items() if k != SPEC_PARAM},
            "data_events": asset_events(context),
            "warm_start": {"requested": requested_warm_start, "source": warm_started_from},
        },
    )
