"""OpenLineage for the provider's operators: the methods the OpenLineage provider calls when
a task ends (`get_openlineage_facets_on_complete` / `_on_failure`), built from what the step
recorded while it ran. Nothing here imports OpenLineage until it asks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.lineage.step import StepLineage
from airflow_tfexp.names import SPEC_PARAM


def config_hash(experiment_fn: str | None, authored_params: Mapping[str, Any] | None) -> str:
    """sha256 of what defines the experiment: a factory DAG's config (its runtime spec), else
    the experiment_fn and the params the DAG file declares (run conf is not part of it)."""
    params = dict(authored_params or {})
    spec = params.get(SPEC_PARAM)
    if isinstance(spec, str):
        source = spec
    else:
        source = json.dumps(
            {"experiment_fn": experiment_fn, "params": params}, sort_keys=True, default=str
        )
    return hashlib.sha256(source.encode()).hexdigest()


class LineageMixin:
    """An operator's lineage: `note_lineage(step, result)` says what the step read and wrote
    (`result`: what `execute` returned, None when it failed); the OpenLineage provider gets it
    as an `OperatorLineage` with the provider's facets."""

    lineage_result: Any = None
    lineage_data_events: list[str] | None = None

    def note_lineage(self, step: StepLineage, result: Any) -> None:
        step.add_inputs(getattr(self, "model_dir", None))

    def remember_for_lineage(self, context: Any, result: Any) -> Any:
        """Keep what `execute` returned (and the run's triggering asset URIs) for lineage."""
        from airflow_tfexp._airflow import asset_events

        self.lineage_result = result
        self.lineage_data_events = [e["uri"] for e in asset_events(context) if e.get("uri")]
        return result

    def step_lineage(self, result: Any) -> StepLineage:
        task: Any = self
        experiment_fn, authored = experiment_identity(task)
        step = StepLineage(
            experiment_id=getattr(task, "experiment_id", None) or task.dag_id,
            experiment_fn=experiment_fn,
            config_hash=config_hash(experiment_fn, authored),
        )
        self.note_lineage(step, result)
        # what the DAG file declares: read and written as well, whatever the step is
        step.add_inputs(*(getattr(x, "uri", None) for x in getattr(task, "inlets", None) or []))
        step.add_outputs(*(getattr(x, "uri", None) for x in getattr(task, "outlets", None) or []))
        return step

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_tfexp.lineage.step import operator_lineage

        return operator_lineage(self.step_lineage(self.lineage_result))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_tfexp.lineage.step import operator_lineage

        return operator_lineage(self.step_lineage(None))


def experiment_identity(task: Any) -> tuple[str | None, dict[str, Any]]:
    """The experiment_fn and DAG-file params that define the experiment a task belongs to: its
    own, or (publish, approve: steps that build no Experiment) those of its DAG's first
    experiment task, so every step of one experiment reports the same config hash."""
    from airflow_tfexp.operators._run_params import snapshot_params

    if getattr(task, "authored_params", None) is not None:
        return getattr(task, "experiment_fn", None), task.authored_params
    dag = task.dag if getattr(task, "has_dag", lambda: True)() else None
    for other in sorted(getattr(dag, "tasks", None) or [], key=lambda t: t.task_id):
        authored = getattr(other, "authored_params", None)
        if isinstance(authored, dict) and isinstance(getattr(other, "experiment_fn", None), str):
            return other.experiment_fn, authored
    return None, snapshot_params(task.params)


def note_metrics(step: StepLineage, result: Any, evaluator: str | None = None) -> None:
    """The evaluation a step's result carries (`metrics`, `global_step`), as a run facet."""
    if isinstance(result, Mapping) and isinstance(result.get("metrics"), Mapping):
        step.metrics = dict(result["metrics"])
        step.global_step = result.get("global_step")
        step.evaluator = evaluator
