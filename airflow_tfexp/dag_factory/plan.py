"""A spec's DAG plan: everything the builder needs, as plain JSON.

Plain JSON so that a validated config's plan can be cached (see `cache`): parsing an unchanged
config again then skips YAML and pydantic entirely.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from airflow_tfexp._airflow import asset_uri
from airflow_tfexp.dag_factory.spec import AssetSchedule, ComputeSpec, ExperimentSpec
from airflow_tfexp.dag_factory.stages import evaluation_stages, plan_stages


def compute_to_json(compute: ComputeSpec) -> dict[str, Any]:
    data = compute.model_dump(mode="python")
    timeout = data.pop("execution_timeout")
    data["execution_timeout_secs"] = timeout.total_seconds() if timeout else None
    return data


def _schedule_to_json(schedule: Any) -> Any:
    if isinstance(schedule, datetime.timedelta):
        return {"seconds": schedule.total_seconds()}
    if isinstance(schedule, AssetSchedule):
        return {"assets": list(schedule.assets)}
    return schedule


def _doc(spec: ExperimentSpec, stages: list[Any]) -> str:
    mode = "tuning (a sweep, one wave per run)" if spec.tuning else spec.schedule_mode
    lines = [
        f"Built by airflow-tfexp's DAG factory in `{mode}` mode.",
        "",
        "| task | runs | on |",
        "|---|---|---|",
    ]
    for stage in stages:
        compute = spec.compute.get(stage.compute) if stage.compute else None
        settings = compute.model_dump(exclude_defaults=True) if compute else {}
        where = ", ".join(f"{k}={v}" for k, v in settings.items())
        lines.append(f"| {stage.task_id} | {stage.operator} | {where or 'default executor'} |")
    return "\n".join(lines)


def _dag_settings(spec: ExperimentSpec, stages: list[Any], **overrides: Any) -> dict[str, Any]:
    return {
        "dag_id": spec.dag_id,
        "schedule": _schedule_to_json(spec.schedule),
        "start_date": spec.start_date.isoformat(),
        "catchup": spec.catchup,
        "tags": list(spec.tags),
        "description": spec.description or f"TensorFlow Experiment ({spec.schedule_mode})",
        "default_args": {"retries": spec.retries, **spec.default_args},
        "doc_md": _doc(spec, stages),
        "params": spec.param_declarations(),
        **overrides,
    }


def _evaluation_dag(spec: ExperimentSpec) -> dict[str, Any]:
    """event_driven's second DAG: one run per new checkpoint, from the checkpoint asset."""
    stages = evaluation_stages(spec)
    watched = {
        "name": f"{spec.dag_id}_checkpoints",
        "uri": asset_uri(spec.model_dir),
        "model_dir": spec.model_dir,
        "evaluator": spec.evaluation.name,
        "poll_interval": spec.evaluation.poll_interval,
    }
    settings = _dag_settings(
        spec,
        stages,
        dag_id=f"{spec.dag_id}_evaluate",
        schedule={"checkpoints": watched},
        description=f"Evaluates every new checkpoint of {spec.dag_id} (event_driven)",
        max_active_runs=1,  # runs in checkpoint order
    )
    return {"dag": settings, "stages": [dataclasses.asdict(s) for s in stages]}


def plan_from_spec(spec: ExperimentSpec) -> dict[str, Any]:
    stages = plan_stages(spec)
    # a sweep's waves (one per run) follow one another
    sweep = {"max_active_runs": 1} if spec.tuning else {}
    return {
        "dag": _dag_settings(spec, stages, **sweep),
        "stages": [dataclasses.asdict(stage) for stage in stages],
        "compute": {stage: compute_to_json(compute) for stage, compute in spec.compute.items()},
        "companions": [_evaluation_dag(spec)] if spec.schedule_mode == "event_driven" else [],
    }
