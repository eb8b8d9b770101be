"""The experiment config, validated into a frozen spec before any DAG object exists.

Every error names the field path, the value received and what is allowed, and all errors of a
config are reported together (pydantic collects them; unknown keys get a "did you mean").
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_tfexp._approval_rules import approval_seconds_error, approvers_error
from airflow_tfexp.dag_factory.config_errors import describe_error
from airflow_tfexp.dag_factory.durations import DURATION, parse_duration
from airflow_tfexp.dag_factory.errors import ExperimentConfigError
from airflow_tfexp.dag_factory.params import (
    check_params,
    check_template_inputs,
    param_declarations,
)
from airflow_tfexp.dag_factory.tuning import TuningConfig, check_tuning
from airflow_tfexp.experiment.arguments import FACTORY_DEFAULTS, MINIMUM
from airflow_tfexp.experiment.experiment_fn import parse_experiment_fn
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.names import (
    DEFAULT_RAY_CONN_ID,
    LATEST_BLESSED,
    NO_WARM_START,
)

# The seed Experiment's constructor arguments a config may set directly (defaults and bounds
# are the engine's, see experiment/arguments.py).
EXPERIMENT_ARGUMENTS = tuple(FACTORY_DEFAULTS)
_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "@annually",
)


class _Strict(BaseModel):
    """Unknown keys are errors; a validated spec never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _dotted_path(value: Any) -> str:
    parse_experiment_fn(value, "path")
    return value


Seconds = Annotated[float, Field(ge=0)]


class TolerationSpec(_Strict):
    """A Kubernetes toleration (the fields of `V1Toleration`, in its snake_case names)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


class ComputeSpec(_Strict):
    """Where a stage runs: executor, queue, pool, GPUs and limits."""

    executor: str | None = None
    queue: str | None = None
    pool: str | None = None
    gpus: int = Field(0, ge=0)
    memory: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[TolerationSpec] = Field(default_factory=list)
    execution_timeout: datetime.timedelta | None = None

    @field_validator("execution_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$", value):
            raise ValueError('expected a Kubernetes quantity like "4Gi" or "512Mi"')
        return value


class ExporterSpec(_Strict):
    type: Literal["latest", "best", "final"]
    name: str | None = None
    exports_to_keep: int | None = Field(5, ge=1)
    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    serving_input_fn: str | None = None

    @field_validator("serving_input_fn")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _dotted_path(value)


class RunConfigSpec(_Strict):
    save_checkpoints_steps: int | None = Field(None, ge=1)
    save_checkpoints_secs: int | None = Field(None, ge=1)
    keep_checkpoint_max: int | None = Field(5, ge=0)
    log_step_count_steps: int = Field(100, ge=1)
    save_summary_steps: int = Field(100, ge=1)
    tf_random_seed: int | None = Field(None, ge=0)


class EvaluationSpec(_Strict):
    """How checkpoints are evaluated: by which evaluator name, which checkpoints, how waiting is
    done ("defer": in the triggerer; "reschedule": the task frees its slot between looks)."""

    name: str = "continuous"
    every_checkpoint: bool = True
    poll_interval: float = Field(5.0, gt=0)
    wait: Literal["defer", "reschedule"] = "defer"


class AssetSchedule(_Strict):
    """Run when data arrives: the DAG is scheduled on these assets (URIs like gs://b/data/)."""

    assets: list[str] = Field(min_length=1)

    @field_validator("assets")
    @classmethod
    def _uris(cls, value: list[str]) -> list[str]:
        bad = [uri for uri in value if "://" not in uri or uri.startswith("://")]
        if bad:
            raise ValueError(f'expected asset URIs like "gs://bucket/data/" (got {bad})')
        return value


class BlessingConfig(_Strict):
    """The gate between a trained candidate and production (see BlessOperator)."""

    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    min_delta: float = Field(0.0, ge=0)
    threshold: float | None = None
    bless_without_baseline: bool = True
    exporter: str | None = None  # whose export is the candidate; default: the only exporter
    allow_rollback: bool = False  # publish a candidate older than LATEST's (PublishOperator)
    # a person approves a blessed candidate before it is published (ApproveModelOperator)
    approval: Literal["required", "none"] = "none"
    approval_timeout: Any = Field("1d", validate_default=True)  # then the answer is Reject
    approvers: list[str] | None = None  # Airflow user ids who may answer (None: the DAG's)

    @field_validator("approval_timeout")
    @classmethod
    def _approval_timeout(cls, value: Any) -> float:

        try:
            seconds = parse_duration(value).total_seconds() if value is not None else 0.0
        except OverflowError:
            seconds = math.inf
        error = approval_seconds_error(seconds)
        if error:  # describe_error adds the value given
            raise ValueError(f'{error}, like "90s", "2h" or "1d"')
        return seconds

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, value: list[str] | None) -> list[str] | None:
        error = approvers_error(value) if value is not None else None
        if error:
            raise ValueError(error)
        return value

    @model_validator(mode="after")
    def _approval_settings_need_approval(self) -> BlessingConfig:
        """Approvers or a timeout without `approval: required` would build no gate at all."""
        given = sorted({"approvers", "approval_timeout"} & self.model_fields_set)
        if given and self.approval != "required":
            raise ValueError(
                f"blessing: {' and '.join(given)} set but approval is {self.approval!r}: set "
                "approval: required to ask a person before publishing, or remove them"
            )
        return self


class ExperimentSpec(_Strict):
    """Everything a factory DAG is built from."""

    # -- the Airflow side
    dag_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    schedule: str | datetime.timedelta | AssetSchedule | None = None
    start_date: datetime.datetime = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    catchup: bool = False
    tags: list[str] = Field(default_factory=lambda: ["tfexp"])
    default_args: dict[str, Any] = Field(default_factory=dict)
    retries: int = Field(1, ge=0)
    description: str | None = None
    schedule_mode: Literal["train_and_evaluate", "per_checkpoint", "local", "event_driven"] = (
        "train_and_evaluate"
    )
    # -- the model and its inputs
    model_dir: str
    experiment_fn: str | None = None
    model_fn: str | None = None
    train_input_fn: str | None = None
    eval_input_fn: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # -- the Experiment's own arguments (names and defaults of the seed)
    train_steps: int | None = Field(FACTORY_DEFAULTS["train_steps"], ge=MINIMUM["train_steps"])
    eval_steps: int | None = Field(FACTORY_DEFAULTS["eval_steps"], ge=MINIMUM["eval_steps"])
    min_eval_frequency: int | None = Field(
        FACTORY_DEFAULTS["min_eval_frequency"], ge=MINIMUM["min_eval_frequency"]
    )
    eval_delay_secs: Seconds = FACTORY_DEFAULTS["eval_delay_secs"]
    continuous_eval_throttle_secs: Seconds = FACTORY_DEFAULTS["continuous_eval_throttle_secs"]
    delay_workers_by_global_step: bool = FACTORY_DEFAULTS["delay_workers_by_global_step"]
    train_steps_per_iteration: int | None = Field(
        FACTORY_DEFAULTS["train_steps_per_iteration"], ge=MINIMUM["train_steps_per_iteration"]
    )
    checkpoint_and_export: bool = FACTORY_DEFAULTS["checkpoint_and_export"]
    exporters: list[ExporterSpec] = Field(default_factory=list)
    run_config: RunConfigSpec = Field(default_factory=RunConfigSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    compute: dict[Literal["train", "evaluate", "export"], ComputeSpec] = Field(default_factory=dict)
    # -- scale-out: training spread over workers (launcher ray), see DistributionSpec
    distribution: dict[str, Any] | None = None
    ray_conn_id: str = DEFAULT_RAY_CONN_ID
    # -- retraining: warm start, the blessing gate, publishing
    warm_start_from: str | None = None
    publish_dir: str | None = None
    blessing: BlessingConfig | None = None
    # -- a hyperparameter sweep of the experiment (see dag_factory/tuning.py)
    tuning: TuningConfig | None = None

    @field_validator("experiment_fn", "model_fn", "train_input_fn", "eval_input_fn")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _dotted_path(value)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_params(value)
        return value

    def param_declarations(self) -> dict[str, dict[str, Any]]:
        """Every param a run may override: `{key: {"default", "schema", "description"}}`."""
        return param_declarations(self.params)

    @field_validator("model_dir")
    @classmethod
    def _model_dir(cls, value: str) -> str:
        parse_model_dir(value, "model_dir")
        return value

    @field_validator("distribution")
    @classmethod
    def _distribution(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from airflow_tfexp.launchers.spec import DistributionSpec

        return DistributionSpec.from_value(value).as_dict()

    @field_validator("publish_dir")
    @classmethod
    def _publish_dir(cls, value: str | None) -> str | None:
        if value is not None:
            parse_model_dir(value, "publish_dir")
        return value

    @field_validator("warm_start_from")
    @classmethod
    def _warm_start_from(cls, value: str | None) -> str | None:
        if value is None or value in (LATEST_BLESSED, NO_WARM_START):
            return None if value == NO_WARM_START else value
        try:
            parse_model_dir(value, "warm_start_from")
        except ValueError:
            raise ValueError(
                f'expected "{LATEST_BLESSED}", "{NO_WARM_START}", or a checkpoint, model dir or export path'
            ) from None
        return value

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime.timedelta):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return parse_duration(value)
        if isinstance(value, dict):  # {assets: [...]}
            try:
                return AssetSchedule.model_validate(value)
            except ValidationError as err:
                raise ValueError(
                    "; ".join(
                        f"{'.'.join(str(p) for p in e['loc']) or 'assets'}: "
                        + e["msg"].removeprefix("Value error, ")
                        for e in err.errors()
                    )
                ) from None
        if not isinstance(value, str):
            raise ValueError(
                "expected null, a cron expression, a preset like @daily, a duration like 6h, "
                "or {assets: [uri, ...]}"
            )
        if value.startswith("@"):
            if value not in _PRESETS:
                raise ValueError(f"unknown preset; expected one of {list(_PRESETS)}")
            return value
        if DURATION.match(value.strip()):
            return parse_duration(value)
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(
                "not a valid cron expression (5 fields: minute hour day month weekday)"
            )
        return value

    @field_validator("start_date", mode="before")
    @classmethod
    def _start_date(cls, value: Any) -> Any:
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            value = datetime.datetime(value.year, value.month, value.day)
        if isinstance(value, datetime.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value

    @model_validator(mode="after")
    def _model_source(self) -> ExperimentSpec:
        parts = {
            "model_fn": self.model_fn,
            "train_input_fn": self.train_input_fn,
            "eval_input_fn": self.eval_input_fn,
        }
        if self.experiment_fn is not None:
            given = [k for k, v in parts.items() if v]
            if given:
                raise ValueError(
                    f"give either experiment_fn or model_fn + train_input_fn + eval_input_fn, not both (also got {given})"
                )
            if self.exporters:
                raise ValueError(
                    "exporters: only with model_fn; an experiment_fn defines its own export strategies"
                )
        else:
            missing = [k for k, v in parts.items() if not v]
            if missing:
                raise ValueError(
                    f"missing {missing}: give experiment_fn, or model_fn + train_input_fn + eval_input_fn"
                )
        run_config = self.run_config
        if run_config.save_checkpoints_steps and run_config.save_checkpoints_secs:
            raise ValueError(
                "run_config: give save_checkpoints_steps or save_checkpoints_secs, not both"
            )
        names = [e.name or e.type for e in self.exporters]
        if len(set(names)) != len(names):
            raise ValueError(f"exporters: names must be distinct, got {names}")
        self._check_retraining(names)

        if self.schedule_mode == "event_driven" and (
            "{{" in self.model_dir or "{%" in self.model_dir
        ):
            raise ValueError(
                "model_dir: event_driven mode watches one model dir for checkpoints, so it cannot "
                f"be templated (got {self.model_dir!r})"
            )
        for field in ("model_dir", "publish_dir", "warm_start_from"):
            check_template_inputs(field, getattr(self, field), set(self.params))
        check_tuning(self)
        return self

    def _check_retraining(self, exporter_names: list[str]) -> None:
        if self.warm_start_from == LATEST_BLESSED and not self.publish_dir:
            raise ValueError(
                f'warm_start_from: "{LATEST_BLESSED}" needs publish_dir (the blessed models are '
                "the ones published there)"
            )
        if self.blessing is not None and not self.publish_dir:
            raise ValueError("blessing: needs publish_dir, where blessed models are published")
        if not self.publish_dir or self.experiment_fn is not None:
            return
        chosen = self.blessing.exporter if self.blessing else None
        if not exporter_names:
            raise ValueError(
                "publish_dir: publishing needs an export; add an exporter (e.g. {type: latest})"
            )
        if chosen is None and len(exporter_names) > 1:
            raise ValueError(
                f"blessing.exporter: required with several exporters (one of {exporter_names})"
            )
        if chosen is not None and chosen not in exporter_names:
            raise ValueError(
                f"blessing.exporter: {chosen!r} is not an exporter (one of {exporter_names})"
            )

    @property
    def blessing_config(self) -> BlessingConfig:
        return self.blessing or BlessingConfig()

    def experiment_arguments(self) -> dict[str, Any]:
        """The Experiment constructor arguments the config sets."""
        return {key: getattr(self, key) for key in EXPERIMENT_ARGUMENTS}


def parse_spec(config: Any, source: str = "(dict)") -> ExperimentSpec:
    """Validate a config dict into an ExperimentSpec, or raise ExperimentConfigError with all
    its problems."""
    if not isinstance(config, dict):
        raise ExperimentConfigError(
            source, [f"expected a mapping of settings, got {type(config).__name__}"]
        )
    try:
        return ExperimentSpec.model_validate(config)
    except ValidationError as err:
        raise ExperimentConfigError(
            source, [describe_error(e, ExperimentSpec) for e in err.errors()]
        ) from None
