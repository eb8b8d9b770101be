"""What the sweep's tasks share: a trial as a task receives it, the study's storage from an
Airflow connection, and the study of a sweep's model dir. Light at import (no Optuna)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment.tuning.study import StudySpec
from airflow_tfexp.experiment.tuning.trials import Trial, trial_model_dir


def checked_trial(value: Any, model_dir: str, study: Any = None) -> dict[str, Any]:
    """`{"number", "params", "model_dir"}` of a trial from XCom: a whole number, params of JSON
    scalars (names of the study's search space when the study is known), and a model dir that
    is always `<model_dir>/trials/<number>` (whatever the value says)."""
    if isinstance(value, str):  # an XCom rendered into a string template field
        value = json.loads(value)
    if study is not None:
        spec = StudySpec.from_value(study)
        return Trial.from_value(value, spec, model_dir).as_dict()
    number = value.get("number") if isinstance(value, Mapping) else None
    params = value.get("params") if isinstance(value, Mapping) else None
    if (
        isinstance(number, bool)
        or not isinstance(number, int)
        or number < 0
        or not isinstance(params, Mapping)
        or not all(
            isinstance(k, str) and not k.startswith("tfexp_") and _scalar(v)
            for k, v in params.items()
        )
    ):
        raise ValueError(
            f"Invalid value for `trial`. Received: {value!r}. Expected a trial of a sweep, "
            '{"number": n, "params": {name: value}} (as SuggestTrialsOperator returns it).'
        )
    return {
        "number": number,
        "params": dict(params),
        "model_dir": trial_model_dir(model_dir, number),
        "study_name": value.get("study_name"),
    }


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def study_storage_url(study_conn_id: str | None) -> str | None:
    """The SQLAlchemy URL of the study's database from an Airflow connection (None: none)."""
    if not study_conn_id:
        return None
    from airflow_tfexp.hooks.study_storage import StudyStorageHook

    return StudyStorageHook(study_conn_id).get_storage_url()


def open_sweep_study(
    study: Any, model_dir: str, study_conn_id: str | None, study_name: str | None = None
) -> tuple[Any, StudySpec]:
    """The Optuna study of the sweep in `model_dir`, and its spec; `study_name` (rendered from
    a template, say) replaces the spec's name."""
    import dataclasses

    from airflow_tfexp._airflow import is_templated
    from airflow_tfexp.experiment.tuning.study import open_study

    spec = StudySpec.from_value(study)
    if study_name is not None:
        if (
            not isinstance(study_name, str)
            or not study_name
            or len(study_name) > 200
            or is_templated(study_name)
        ):
            raise ValueError(
                f"Invalid value for `study_name`. Received: {study_name!r}. Expected a study "
                "name of 1 to 200 characters once rendered."
            )
        spec = dataclasses.replace(spec, name=study_name)

    return open_study(spec, model_dir, study_storage_url(study_conn_id)), spec
