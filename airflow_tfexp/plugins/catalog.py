"""Which DAGs are experiments, their runs, and where each run's model dir is (metadata DB).

A DAG is an experiment DAG when one of its tasks is an airflow-tfexp operator or sensor. A
run's model dir is what its tasks rendered for `model_dir` (stored by Airflow with each task
instance), so templated, per-run model dirs are found too.
"""

from __future__ import annotations

from typing import Any

TFEXP_MODULE_PREFIX = "airflow_tfexp."


def experiment_dag_ids(readable: set[str] | None) -> list[str]:
    """The experiment DAGs among those the user may read (None: all)."""
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dag_ids = session.scalars(select(DagModel.dag_id).where(DagModel.is_stale.is_(False))).all()
        found = []
        for dag_id in sorted(dag_ids):
            if readable is not None and dag_id not in readable:
                continue
            dag = SerializedDagModel.get_dag(dag_id, session=session)
            if dag is not None and any(_is_tfexp(task) for task in dag.tasks):
                found.append(dag_id)
        return found


def _is_tfexp(task: Any) -> bool:
    module = getattr(task, "_task_module", "") or getattr(task, "task_module", "") or ""
    return module.startswith(TFEXP_MODULE_PREFIX)


def _writer(fields: Any, dag_id: str) -> str:
    """The experiment a task writes for: its `experiment_id`, else its DAG's id."""
    value = fields.get("experiment_id") if isinstance(fields, dict) else None
    return value if isinstance(value, str) and value else dag_id


def static_model_dirs(dag_id: str) -> dict[str, set[str]]:
    """Model dirs written into the DAG itself (not templated), each with the experiments its
    tasks write for."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    dirs: dict[str, set[str]] = {}
    for task in dag.tasks if dag else []:
        value = getattr(task, "model_dir", None)
        if _is_tfexp(task) and isinstance(value, str) and "{{" not in value:
            fields = {"experiment_id": getattr(task, "experiment_id", None)}
            dirs.setdefault(value, set()).add(_writer(fields, dag_id))
    return dict(sorted(dirs.items()))


def runs(dag_id: str, limit: int = 25) -> list[dict[str, Any]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id)
            .order_by(DagRun.run_after.desc())
            .limit(limit)
        ).all()
        return [
            {
                "run_id": r.run_id,
                "state": str(r.state),
                "run_after": r.run_after.isoformat() if r.run_after else "",
                "logical_date": r.logical_date.isoformat() if r.logical_date else None,
            }
            for r in rows
        ]


def rendered_fields(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """What the run's task instances rendered (model_dir, publish_dir, experiment_id, ...)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(RTIF.rendered_fields).where(RTIF.dag_id == dag_id, RTIF.run_id == run_id)
        ).all()
    return [fields for fields in rows if isinstance(fields, dict)]


def run_publish_dirs(dag_id: str, run_id: str) -> dict[str, set[str]]:
    """The publish dirs the run's tasks rendered, each with the experiments they write for."""
    dirs: dict[str, set[str]] = {}
    for fields in rendered_fields(dag_id, run_id):
        value = fields.get("publish_dir")
        if isinstance(value, str) and value and "{{" not in value:
            dirs.setdefault(value, set()).add(_writer(fields, dag_id))
    return dirs


def run_model_dirs(dag_id: str, run_id: str) -> dict[str, set[str]]:
    """The model dirs the run's tasks rendered (else the DAG's static ones), each with the
    experiments the tasks that rendered it write for (an owner stamp must name one of them)."""
    rendered = rendered_fields(dag_id, run_id)
    dirs: dict[str, set[str]] = {}
    for fields in rendered:
        value = (fields or {}).get("model_dir")
        if isinstance(value, str) and value:
            dirs.setdefault(value, set()).add(_writer(fields, dag_id))
    for fields in rendered:  # a sweep's trials, after the sweep's own dir
        value, number = (fields or {}).get("model_dir"), _trial_number(fields)
        if isinstance(value, str) and value and number is not None:
            from airflow_tfexp.experiment.tuning.trials import trial_model_dir

            dirs.setdefault(trial_model_dir(value, number), set()).add(_writer(fields, dag_id))
    return dirs or static_model_dirs(dag_id)


def _trial_number(fields: Any) -> int | None:
    """The number of the sweep's trial a task ran (its rendered `trial`), else None."""
    trial = fields.get("trial") if isinstance(fields, dict) else None
    number = trial.get("number") if isinstance(trial, dict) else None
    if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
        return number
    return None
