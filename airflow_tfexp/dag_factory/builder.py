"""Spec -> DAG: the only module of the factory that instantiates operators."""

from __future__ import annotations

import glob
import os
from typing import Any

from airflow_tfexp.dag_factory.compute import (
    check_executor,
    configured_executors,
    operator_arguments,
)
from airflow_tfexp.dag_factory.spec import ExperimentConfigError, ExperimentSpec, parse_spec
from airflow_tfexp.dag_factory.stages import Stage, plan_stages


def build_experiment_dag(config: dict[str, Any], source: str = "(dict)") -> Any:
    """Validate `config` (every problem reported at once) and build its DAG."""
    spec = parse_spec(config, source)
    configured = configured_executors()
    problems = [
        p for stage, c in spec.compute.items() if (p := check_executor(stage, c, configured))
    ]
    if problems:
        raise ExperimentConfigError(source, problems)
    return _to_dag(spec, plan_stages(spec))


def _operator_class(name: str) -> type:
    import airflow_tfexp.operators as operators
    import airflow_tfexp.sensors as sensors

    return getattr(operators, name, None) or getattr(sensors, name)


def _to_dag(spec: ExperimentSpec, stages: list[Stage]) -> Any:
    from airflow.sdk import DAG

    dag = DAG(
        dag_id=spec.dag_id,
        schedule=spec.schedule,
        start_date=spec.start_date,
        catchup=spec.catchup,
        tags=list(spec.tags),
        description=spec.description or f"TensorFlow Experiment ({spec.schedule_mode})",
        default_args={"retries": spec.retries, **spec.default_args},
        doc_md=_doc(spec, stages),
    )
    tasks: dict[str, Any] = {}
    with dag:
        for stage in stages:
            cls = _operator_class(stage.operator)
            compute = spec.compute.get(stage.compute) if stage.compute else None
            kwargs = {**stage.arguments, **operator_arguments(stage.compute or "", compute)}
            if stage.expand_from:
                task = cls.partial(task_id=stage.task_id, **kwargs).expand(
                    checkpoint_path=tasks[stage.expand_from].output
                )
            else:
                task = cls(task_id=stage.task_id, **kwargs)
            for upstream in stage.upstream:
                tasks[upstream] >> task
            tasks[stage.task_id] = task
    return dag


def _doc(spec: ExperimentSpec, stages: list[Stage]) -> str:
    lines = [
        f"Built by airflow-tfexp's DAG factory in `{spec.schedule_mode}` mode.",
        "",
        "| task | runs | on |",
        "|---|---|---|",
    ]
    for stage in stages:
        compute = spec.compute.get(stage.compute) if stage.compute else None
        where = ", ".join(
            f"{k}={v}"
            for k, v in (compute.model_dump(exclude_defaults=True) if compute else {}).items()
        )
        lines.append(f"| {stage.task_id} | {stage.operator} | {where or 'default executor'} |")
    return "\n".join(lines)


def load_config_file(path: str) -> dict[str, Any]:
    """A YAML config, loaded safely (no Python tags)."""
    import yaml

    try:
        with open(path) as handle:
            # libyaml's safe loader when available: the same rules, several times faster
            return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise ExperimentConfigError(path, [f"not valid (safe) YAML: {err}"]) from None
    except OSError as err:
        raise ExperimentConfigError(path, [f"cannot read the file: {err}"]) from None


def load_experiment_dag(path: str) -> Any:
    """One DAG from one YAML file: `dag = load_experiment_dag(__file__.replace(".py", ".yaml"))`.

    One DAG file per experiment keeps a broken config to its own import error."""
    return build_experiment_dag(load_config_file(path), source=path)


def load_experiment_dags(path_or_glob: str) -> dict[str, Any]:
    """Every experiment in a YAML file, a directory of them, or a glob: `{dag_id: DAG}`.

    All files are validated; if any is invalid, one ExperimentConfigError lists every problem of
    every file (Airflow shows it as this DAG file's import error).
    """
    if os.path.isdir(path_or_glob):
        paths = sorted(
            glob.glob(os.path.join(path_or_glob, "*.yaml"))
            + glob.glob(os.path.join(path_or_glob, "*.yml"))
        )
    else:
        paths = sorted(glob.glob(path_or_glob))
    dags: dict[str, Any] = {}
    problems: list[str] = []
    for path in paths:
        try:
            dag = load_experiment_dag(path)
        except ExperimentConfigError as err:
            problems += [f"{path}: {p}" for p in err.problems]
            continue
        if dag.dag_id in dags:
            problems.append(f"{path}: dag_id {dag.dag_id!r} is already used by another config")
        dags[dag.dag_id] = dag
    if problems:
        raise ExperimentConfigError(path_or_glob, problems)
    return dags
