"""Reading a sweep's study back in a test, as its DAG describes it."""

from __future__ import annotations

from typing import Any


def study_arguments(dag: Any) -> dict[str, Any]:
    return dag.get_task("suggest_trials").study


def load_rows(dag: Any, model_dir: str) -> list[dict[str, Any]]:
    """Every trial of the sweep in `model_dir`, as the sweep's table shows it."""
    from airflow_tfexp.experiment.tuning.study import StudySpec, open_study
    from airflow_tfexp.experiment.tuning.trials import study_rows

    spec = StudySpec.from_value(study_arguments(dag))
    return study_rows(open_study(spec, model_dir), spec, model_dir)
