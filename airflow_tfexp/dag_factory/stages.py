"""A spec -> the stages of its DAG: task id, operator, arguments, compute and dependencies.

The one place that decides a schedule mode's shape; `builder` turns stages into operators.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from airflow_tfexp.dag_factory.spec import ExperimentSpec
from airflow_tfexp.names import BEST_TRIAL_KEY, SPEC_PARAM

RUNTIME_EXPERIMENT_FN = "airflow_tfexp.dag_factory.runtime:experiment_from_spec"


@dataclasses.dataclass(frozen=True)
class Stage:
    task_id: str
    operator: str  # class name in airflow_tfexp.operators / sensors
    arguments: dict[str, Any]
    compute: str | None = None  # which compute section applies: train / evaluate / export
    upstream: tuple[str, ...] = ()
    expand_from: str | None = None  # map over this stage's output (`expand_arg`=...)
    expand_arg: str = "checkpoint_path"
    # arguments that are another stage's XCom: {argument: [task_id, key]}
    xcom_arguments: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def experiment_arguments(spec: ExperimentSpec) -> dict[str, Any]:
    """What every experiment operator takes: experiment_fn, model_dir and its params."""
    return {
        "experiment_fn": spec.experiment_fn or RUNTIME_EXPERIMENT_FN,
        "model_dir": spec.model_dir,
        "params": experiment_params(spec),
        # a run's conf may override only the params the config declares (on the DAG, with
        # their schemas); the rest of these params are fixed
        "overridable_params": sorted(spec.params),
        # the companion evaluation DAG (event_driven) writes for the same experiment
        "experiment_id": spec.dag_id,
    }


def experiment_params(spec: ExperimentSpec) -> dict[str, Any]:
    """The task's own params: what `experiment_fn(run_config, params)` gets beside the config's
    `params:` (those are the DAG's, with their schemas, see plan.dag_params)."""
    if spec.experiment_fn:
        # The user's experiment_fn gets the Experiment arguments in its params.
        return {k: v for k, v in spec.experiment_arguments().items() if v is not None}
    runtime = spec.model_dump(
        mode="json",
        include={
            "model_fn",
            "train_input_fn",
            "eval_input_fn",
            "exporters",
            "run_config",
            *spec.experiment_arguments(),
        },
    )
    # As a JSON string: Airflow copies and JSON-checks a task's params once per operator class
    # in its hierarchy while building it; a string is cheap there, a nested dict is not.
    return {SPEC_PARAM: json.dumps(runtime, sort_keys=True)}


def _training(spec: ExperimentSpec) -> dict[str, Any]:
    """What a training stage adds: where a fresh model warm starts from."""
    arguments: dict[str, Any] = {}
    if spec.warm_start_from:
        arguments["warm_start_from"] = spec.warm_start_from
    if spec.publish_dir:
        arguments["publish_dir"] = spec.publish_dir
    return arguments


def _distribution(spec: ExperimentSpec) -> dict[str, Any]:
    if not spec.distribution:
        return {}
    return {"distribution": spec.distribution, "ray_conn_id": spec.ray_conn_id}


def _train(spec: ExperimentSpec, common: dict[str, Any]) -> Stage:
    arguments = {**common, **_training(spec), **_distribution(spec), "delay_secs": 0}
    return Stage("train", "TrainOperator", arguments, "train")


def _train_and_evaluate(spec: ExperimentSpec, common: dict[str, Any]) -> list[Stage]:
    evaluation = spec.evaluation
    return [
        _train(spec, common),
        Stage(
            "continuous_eval",
            "ContinuousEvalOperator",
            {
                **common,
                "name": evaluation.name,
                "every_checkpoint": evaluation.every_checkpoint,
                "throttle_delay_secs": evaluation.poll_interval,
                "deferrable": evaluation.wait == "defer",
                "reschedule": evaluation.wait == "reschedule",
            },
            "evaluate",
        ),
        Stage("export", "ExportOperator", common, "export", upstream=("train", "continuous_eval")),
    ]


def _per_checkpoint(spec: ExperimentSpec, common: dict[str, Any]) -> list[Stage]:
    evaluation = spec.evaluation
    sensor = {
        "model_dir": spec.model_dir,
        "wait_for_training_complete": True,
        "poke_interval": evaluation.poll_interval,
        "timeout": 7 * 24 * 3600,
    }
    if evaluation.wait == "defer":
        sensor["deferrable"] = True
    else:
        sensor.update(deferrable=False, mode="reschedule")
    return [
        _train(spec, common),
        Stage("wait_for_checkpoints", "CheckpointSensor", sensor),  # never on a GPU worker
        Stage(
            "evaluate",
            "EvaluateOperator",
            {**common, "name": evaluation.name},
            "evaluate",
            expand_from="wait_for_checkpoints",
        ),
        Stage("export", "ExportOperator", common, "export", upstream=("train", "evaluate")),
    ]


def _local(spec: ExperimentSpec, common: dict[str, Any]) -> list[Stage]:
    return [
        Stage(
            "train_and_evaluate",
            "TrainAndEvaluateOperator",
            {**common, **_training(spec), **_distribution(spec)},
            "train",
        )
    ]


def _event_driven(spec: ExperimentSpec, common: dict[str, Any]) -> list[Stage]:
    """Training, then export; evaluation is the companion DAG's (see `evaluation_stages`)."""
    return [_train(spec, common), Stage("export", "ExportOperator", common, "export", ("train",))]


def evaluation_stages(spec: ExperimentSpec) -> list[Stage]:
    """The event-driven evaluation DAG: the run's checkpoints (from its asset events), each
    evaluated by its own mapped task instance."""
    common = experiment_arguments(spec)
    return [
        Stage(
            "checkpoints",
            "TriggeringCheckpointsOperator",
            {"model_dir": spec.model_dir, "name": spec.evaluation.name},
        ),
        Stage(
            "evaluate",
            "EvaluateOperator",
            {**common, "name": spec.evaluation.name},
            "evaluate",
            expand_from="checkpoints",
        ),
    ]


def _sweep(spec: ExperimentSpec, common: dict[str, Any]) -> list[Stage]:
    """A wave of a sweep per DAG run: ask for trials, train each (mapped), tell the study,
    then start the next wave or export the best trial."""
    from airflow_tfexp.dag_factory.tuning import study_spec

    tuning = spec.tuning
    assert tuning is not None
    study = study_spec(spec).as_dict()
    sweep = {
        "study": study,
        "model_dir": spec.model_dir,
        "trials": tuning.trials,
        "timeout": tuning.timeout.total_seconds() if tuning.timeout else None,
        "study_conn_id": tuning.study_conn_id,
        "study_name": tuning.study_name,
        "experiment_id": spec.dag_id,
    }
    trial = {
        **common,
        **_training(spec),
        "study": study,
        "study_conn_id": tuning.study_conn_id,
        "study_name": tuning.study_name,
    }
    return [
        Stage("suggest_trials", "SuggestTrialsOperator", {**sweep, "n": tuning.parallel}),
        Stage(
            "trial",
            "TrainAndEvaluateOperator",
            trial,
            "train",
            expand_from="suggest_trials",
            expand_arg="trial",
        ),
        Stage("complete_trials", "CompleteTrialsOperator", sweep, upstream=("trial",)),
        Stage("next_wave", "NextWaveOperator", {}, upstream=("complete_trials",)),
        Stage("continue_sweep", "ContinueSweepOperator", {}, upstream=("next_wave",)),
        Stage(
            "export_best",
            "ExportOperator",
            common,
            "export",
            upstream=("next_wave",),
            xcom_arguments={"trial": ["complete_trials", BEST_TRIAL_KEY]},
        ),
    ]


def _publishing(spec: ExperimentSpec, common: dict[str, Any], last: str) -> list[Stage]:
    """bless -> publish after the stage that exports (`last`), when publish_dir is set (of
    the best trial, in a sweep)."""
    if not spec.publish_dir:
        return []
    best = {"trial": ["complete_trials", BEST_TRIAL_KEY]} if spec.tuning else {}
    blessing = spec.blessing_config
    exporter = blessing.exporter
    if exporter is None and len(spec.exporters) == 1:
        exporter = spec.exporters[0].name or spec.exporters[0].type
    bless = {
        **common,
        "publish_dir": spec.publish_dir,
        "metric": blessing.metric,
        "mode": blessing.mode,
        "min_delta": blessing.min_delta,
        "threshold": blessing.threshold,
        "bless_without_baseline": blessing.bless_without_baseline,
        "exporter_name": exporter,
    }
    stages = [Stage("bless", "BlessOperator", bless, "evaluate", (last,), xcom_arguments=best)]
    if blessing.approval == "required":
        approve = {
            "model_dir": spec.model_dir,
            "publish_dir": spec.publish_dir,
            "response_timeout": blessing.approval_timeout,
            "approvers": blessing.approvers,
        }
        stages.append(
            Stage("approve", "ApproveModelOperator", approve, None, ("bless",), xcom_arguments=best)
        )
    return [
        *stages,
        Stage(
            "publish",
            "PublishOperator",
            {
                "model_dir": spec.model_dir,
                "publish_dir": spec.publish_dir,
                "experiment_id": spec.dag_id,
                "allow_rollback": blessing.allow_rollback,
            },
            upstream=(stages[-1].task_id,),
            xcom_arguments=best,
        ),
    ]


_MODES = {
    "train_and_evaluate": _train_and_evaluate,
    "per_checkpoint": _per_checkpoint,
    "local": _local,
    "event_driven": _event_driven,
}


def plan_stages(spec: ExperimentSpec) -> list[Stage]:
    common = experiment_arguments(spec)
    build = _sweep if spec.tuning else _MODES[spec.schedule_mode]
    stages = build(spec, common)
    return stages + _publishing(spec, common, stages[-1].task_id)
