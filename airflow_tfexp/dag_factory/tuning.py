"""The `tuning:` section of a config: a hyperparameter sweep of the experiment.

The search space, sampler and pruner are checked by the engine's `StudySpec` (one set of rules
for `tune()` and the factory); what only a DAG has (waves under `[core] max_map_length`, where
the study lives for the model dir, run params) is checked here. Messages carry field paths.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from airflow_tfexp.dag_factory.durations import parse_duration

if TYPE_CHECKING:
    from airflow_tfexp.experiment.tuning.study import StudySpec


class ObjectiveConfig(BaseModel):
    """Which metric of a trial's final evaluation the sweep minimizes or maximizes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str = "loss"
    mode: Literal["min", "max"] = "min"


class TuningConfig(BaseModel):
    """A sweep: trials of this experiment with values from `search_space`, `parallel` at a
    time (one wave per DAG run), until the study holds `trials` or `timeout` passes; the DAG
    then exports (and blesses and publishes, when configured) the best trial."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    search_space: dict[str, Any]
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    trials: int = Field(20, ge=1, strict=True)
    parallel: int = Field(4, ge=1, strict=True)
    sampler: str | dict[str, Any] = "tpe"
    pruner: str | dict[str, Any] = "median"
    study_name: str | None = Field(None, min_length=1, max_length=200)
    study_storage: str | None = None
    study_conn_id: str | None = Field(None, min_length=1)
    seed: int | None = Field(None, ge=0)
    timeout: datetime.timedelta | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("study_storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        from airflow_tfexp.experiment.tuning.study import check_storage

        return check_storage("", value)


def study_spec(spec: Any) -> StudySpec:
    """The engine's study for an ExperimentSpec (ValueError with `tuning.` paths)."""
    from airflow_tfexp.experiment.tuning.study import StudySpec

    tuning = spec.tuning
    assert tuning is not None
    return StudySpec.from_value(
        {
            "name": tuning.study_name or spec.dag_id,
            "search_space": tuning.search_space,
            "objective": {**tuning.objective.model_dump(), "eval_name": None},
            "sampler": tuning.sampler,
            "pruner": tuning.pruner,
            "storage": tuning.study_storage,
            "seed": tuning.seed,
        },
        "tuning",
    )


def check_parallel(spec: Any, max_map_length: int) -> str | None:
    """A wave's trials are mapped tasks: a problem when `parallel` exceeds Airflow's limit."""
    if spec.tuning is None or spec.tuning.parallel <= max_map_length:
        return None
    return (
        f"tuning.parallel: a wave's trials are mapped tasks, at most [core] max_map_length "
        f"({max_map_length}); the sweep runs its {spec.tuning.trials} trials in more waves "
        f"(got {spec.tuning.parallel})"
    )


def check_tuning(spec: Any) -> None:
    """What a sweep needs of the rest of an ExperimentSpec; ValueError naming the fields."""
    tuning = spec.tuning
    if tuning is None:
        return
    study = study_spec(spec)
    if "schedule_mode" in spec.model_fields_set and spec.schedule_mode != "local":
        raise ValueError(
            f"tuning: each trial trains and evaluates in its own task (schedule_mode local); "
            f"remove schedule_mode (got {spec.schedule_mode!r})"
        )
    if tuning.study_storage and tuning.study_conn_id:
        raise ValueError("tuning: give study_storage or study_conn_id, not both")
    in_database = bool(tuning.study_conn_id) or tuning.study_storage not in (
        None,
        "journal",
        "sqlite",
    )
    templated = "{{" in spec.model_dir or "{%" in spec.model_dir
    if not in_database and spec.model_dir.startswith("gs://"):
        raise ValueError(
            f"tuning.study_storage: the model dir {spec.model_dir} is on gs://, where a study "
            "file cannot be shared safely; give a SQLAlchemy URL or study_conn_id"
        )
    if in_database and templated and "{{" not in (tuning.study_name or ""):
        raise ValueError(
            "tuning.study_name: the model dir is templated, so runs may train in different model "
            "dirs, but a study in a database belongs to one model dir: template study_name the "
            'same way (e.g. "sweep-{{ params.run_name }}"), or keep the study in the model dir '
            "(study_storage: journal)"
        )
    from airflow_tfexp.dag_factory.params import check_template_inputs

    check_template_inputs("tuning.study_name", tuning.study_name, set(spec.params))
    grid_points = study.max_trials()
    if grid_points is not None and tuning.trials > grid_points:
        raise ValueError(
            f"tuning.trials: the grid has {grid_points} points, so at most {grid_points} "
            f"trials (got {tuning.trials})"
        )
    overlap = sorted(set(tuning.search_space) & set(spec.params))
    if overlap:
        raise ValueError(
            f"tuning.search_space: {overlap} are also run params (params:); a trial's value "
            "would override the run's: keep each in one place"
        )
    if spec.experiment_fn is None and not spec.exporters:
        raise ValueError(
            "tuning: the sweep exports its best trial; add an exporter (e.g. {type: final})"
        )
