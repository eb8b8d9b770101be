"""Trials of a sweep: asked for in waves, trained in their own model dirs, told once.

A trial's model dir is `<sweep model dir>/trials/<number>`, so a retried trial resumes from its
own checkpoints. Its objective comes from its results records (the final evaluation), never from
a value a process kept in memory, so whichever process tells the study (the trial itself, or
the task completing a wave after a trial failed) tells the same value, and only once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.storage.fs import join
from airflow_tfexp.experiment.tuning.space import distributions
from airflow_tfexp.experiment.tuning.study import STARTED_ATTR, StudySpec, open_study

log = logging.getLogger(__name__)
TRIALS_DIR = "trials"
WAVE_ATTR = "tfexp_wave"  # which wave (DAG run, or tune() worker) asked for the trial
PRUNED_AT_ATTR = "tfexp_pruned_at_step"  # the evaluation step at which the pruner stopped it
OBJECTIVE_STEP_ATTR = "tfexp_objective_step"  # the step of the evaluation told as its value
FAILURE_ATTR = "tfexp_failure"  # why a trial was told failed
SURPLUS_ATTR = "tfexp_surplus"  # asked by a worker racing another past the total: never run


def trial_model_dir(model_dir: str, number: int) -> str:
    return join(model_dir, TRIALS_DIR, str(int(number)))


@dataclasses.dataclass(frozen=True)
class Trial:
    """What an `experiment_fn` sees of its trial: the suggested `params`, its `number` in the
    study and its own `model_dir` (`<sweep model dir>/trials/<number>`)."""

    number: int
    params: dict[str, Any]
    model_dir: str
    study_name: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value: Any, spec: StudySpec, model_dir: str) -> Trial:
        """A trial as a task receives it (XCom): its number a whole number, its params names of
        the search space; its model dir is recomputed from the sweep's, never taken as given."""
        if isinstance(value, Trial):
            value = value.as_dict()
        number = value.get("number") if isinstance(value, Mapping) else None
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(
                f"Invalid value for `trial`. Received: {value!r}. Expected a trial of the study "
                '{"number": n, "params": {...}} (as SuggestTrialsOperator returns it).'
            )
        params = value.get("params") or {}
        unknown = (
            sorted(set(params) - set(spec.search_space)) if isinstance(params, Mapping) else None
        )
        if unknown is None or unknown:
            raise ValueError(
                f"Invalid value for `trial`: params {unknown or params!r} are not in the search "
                f"space of the study {spec.name!r} ({sorted(spec.search_space)})."
            )
        return cls(number, dict(params), trial_model_dir(model_dir, number), spec.name)


def _view(frozen: Any, spec: StudySpec, model_dir: str) -> Trial:
    return Trial(
        frozen.number,
        tidy_params(frozen.params, spec),
        trial_model_dir(model_dir, frozen.number),
        spec.name,
    )


def tidy_params(params: Mapping[str, Any], spec: StudySpec) -> dict[str, Any]:
    """The suggested values as an experiment_fn should see them: a stepped float without the
    float noise of its arithmetic (0.3, not 0.30000000000000004)."""
    tidy = dict(params)
    for name, value in tidy.items():
        dimension = spec.search_space.get(name, {})
        if dimension.get("type") == "float" and dimension.get("step") and isinstance(value, float):
            tidy[name] = float(f"{value:.12g}")
    return tidy


def wave_trials(study: Any, spec: StudySpec, model_dir: str, wave: str) -> list[Trial]:
    """The trials already asked for by `wave` (a DAG run's id, a tune() worker), in number
    order; a running trial of no wave (its asker was killed before it could mark it) joins it."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    orphans = [t for t in trials if WAVE_ATTR not in t.user_attrs and t.state == TrialState.RUNNING]
    for orphan in orphans:
        live_trial(study, orphan.number).set_user_attr(WAVE_ATTR, wave)
    mine = [t for t in trials if t.user_attrs.get(WAVE_ATTR) == wave] + orphans
    return [_view(t, spec, model_dir) for t in sorted(mine, key=lambda t: t.number)]


def ask_trials(
    study: Any,
    spec: StudySpec,
    model_dir: str,
    n: int,
    *,
    total: int,
    wave: str,
    timeout_secs: float | None = None,
) -> list[Trial]:
    """Up to `n` new trials for `wave`, so that the study never holds more than `total` (nor
    more than its grid); none once `timeout_secs` have passed since the study began."""
    trials = study.get_trials(deepcopy=False)
    started = study.user_attrs.get(STARTED_ATTR, time.time())
    if timeout_secs is not None and time.time() - started > timeout_secs:
        log.info("No new trials: the sweep's timeout (%.0f s) has passed.", timeout_secs)
        return []
    limit = min(total, spec.max_trials() or total)
    count = max(0, min(n, limit - len(trials)))
    if not count:
        log.info("No new trials: the study has %d of its %d.", len(trials), limit)
        return []
    space = distributions(spec.search_space)
    asked = []
    for _ in range(count):
        trial = study.ask(fixed_distributions=space)
        trial.set_user_attr(WAVE_ATTR, wave)
        if trial.number >= limit:  # another worker asked at the same time: over the total
            from optuna.trial import TrialState

            trial.set_user_attr(SURPLUS_ATTR, True)
            study.tell(trial.number, state=TrialState.FAIL)
            log.info("Trial %d is one more than the sweep's %d: not run.", trial.number, limit)
            break
        asked.append(
            Trial(
                trial.number,
                tidy_params(trial.params, spec),
                trial_model_dir(model_dir, trial.number),
                spec.name,
            )
        )
    log.info(
        "Asked for %d new trials (%d of %d in the study): %s",
        count,
        len(trials) + count,
        limit,
        [t.number for t in asked],
    )
    return asked


def suggest_trials(
    spec: StudySpec,
    model_dir: str,
    n: int,
    *,
    total: int,
    wave: str,
    timeout_secs: float | None = None,
    storage_url: str | None = None,
    study: Any = None,
) -> list[Trial]:
    """A wave's trials: those it already has (asked again, by a retry, it gets the same ones),
    else up to `n` new ones (`ask_trials`), from `study` (default: the spec's, opened)."""
    study = study if study is not None else open_study(spec, model_dir, storage_url)
    mine = wave_trials(study, spec, model_dir, wave)

    if mine:
        log.info("Wave %s already has trials %s: returning them.", wave, [t.number for t in mine])
        return mine
    return ask_trials(study, spec, model_dir, n, total=total, wave=wave, timeout_secs=timeout_secs)


def objective_of(spec: StudySpec, trial_dir: str) -> tuple[float, int] | None:
    """(value, step) of the trial's final evaluation: its newest results record with the
    objective metric; None when it has none."""
    records = [
        r
        for r in read_results(trial_dir, spec.eval_name)
        if isinstance(r.get("metrics"), dict) and spec.metric in r["metrics"]
    ]
    if not records:
        return None
    record = max(records, key=lambda r: r["global_step"])
    return as_number(record["metrics"][spec.metric]), record["global_step"]


def as_number(value: Any) -> float:
    """A recorded metric as a float ("nan" and "inf" are how results files keep them)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def find_trial(study: Any, number: int) -> Any:
    """The study's FrozenTrial numbered `number`; ValueError if the study has none."""
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == number:
            return frozen
    raise ValueError(f"The study {study.study_name!r} has no trial {number}.")


def live_trial(study: Any, number: int) -> Any:
    """An `optuna.trial.Trial` for a running trial that another process asked for, to report
    to and set attributes on: Optuna reaches a trial by its id, which its FrozenTrial carries."""
    from optuna.trial import Trial as OptunaTrial

    return OptunaTrial(study, find_trial(study, number)._trial_id)


def _why_no_objective(spec: StudySpec, trial: Trial, marker: Any, result: Any) -> str:
    if marker is None:
        return "its training did not finish (no completion marker)"
    records = read_results(trial.model_dir, spec.eval_name)
    if not records:
        return f"no evaluation was recorded for it (evaluator {spec.eval_name or '(default)'})"
    if result is None:
        names = sorted({k for r in records for k in r.get("metrics") or {}} - {"global_step"})
        return f"its evaluations have no metric {spec.metric!r} (the objective); they have {names}"
    return f"its final checkpoint (step {marker['global_step']}) was not evaluated"


def complete_trial(study: Any, spec: StudySpec, trial: Trial) -> dict[str, Any]:
    """Tell the study how the trial ended, once: pruned (its hook said so), complete (training
    finished and its final checkpoint was evaluated: that evaluation is its value), or failed.
    A trial the study already finished is left as it is. Returns the trial's row."""
    from optuna.trial import TrialState

    frozen = find_trial(study, trial.number)
    if frozen.state == TrialState.RUNNING:
        if PRUNED_AT_ATTR in frozen.user_attrs:
            study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
        else:
            marker = read_completion_marker(trial.model_dir)
            result = objective_of(spec, trial.model_dir)
            if marker is not None and result is not None and result[1] >= marker["global_step"]:
                value, step = result
                live_trial(study, trial.number).set_user_attr(OBJECTIVE_STEP_ATTR, step)
                state = TrialState.FAIL if math.isnan(value) else TrialState.COMPLETE
                study.tell(
                    trial.number,
                    None if math.isnan(value) else value,
                    state=state,
                    skip_if_finished=True,
                )
            else:
                reason = _why_no_objective(spec, trial, marker, result)
                log.warning("Trial %d failed: %s.", trial.number, reason)
                live_trial(study, trial.number).set_user_attr(FAILURE_ATTR, reason)
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        frozen = find_trial(study, trial.number)
    return trial_row(frozen, spec, trial.model_dir)


def close_stale_trials(study: Any, spec: StudySpec, model_dir: str, wave: str) -> list[dict]:
    """Tell the study how the running trials of other waves ended (from their records), when
    waves run one after another: a wave that is over and left one running ended before it
    could tell it (a run marked failed by hand, say). Returns their rows."""
    from optuna.trial import TrialState

    stale = [
        _view(t, spec, model_dir)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.user_attrs.get(WAVE_ATTR) not in (None, wave)
    ]
    rows = [complete_trial(study, spec, trial) for trial in stale]
    for row in rows:
        log.warning(
            "Trial %d of wave %s was left running by its wave: told as %s.",
            row["number"],
            row["wave"],
            row["state"],
        )
    return rows


def trial_row(frozen: Any, spec: StudySpec, trial_dir: str) -> dict[str, Any]:
    """One trial as the sweep's table shows it (JSON-able)."""
    value = frozen.value if frozen.values else None
    if value is None and frozen.intermediate_values:
        last = max(frozen.intermediate_values)
        value = frozen.intermediate_values[last]
    return {
        "number": frozen.number,
        "params": tidy_params(frozen.params, spec),
        "failure": frozen.user_attrs.get(FAILURE_ATTR),
        "state": frozen.state.name.lower(),
        "value": None if value is None or math.isnan(value) else value,
        "pruned_at_step": frozen.user_attrs.get(PRUNED_AT_ATTR),
        "objective_step": frozen.user_attrs.get(OBJECTIVE_STEP_ATTR),
        "intermediate_values": {str(k): v for k, v in sorted(frozen.intermediate_values.items())},
        "wave": frozen.user_attrs.get(WAVE_ATTR),
        "model_dir": trial_dir,
    }


def study_rows(study: Any, spec: StudySpec, model_dir: str) -> list[dict[str, Any]]:
    return [
        trial_row(t, spec, trial_model_dir(model_dir, t.number))
        for t in study.get_trials(deepcopy=False)
    ]


def best_trial(study: Any, spec: StudySpec, model_dir: str) -> Trial | None:
    """The complete trial with the best value (ties: the earliest), or None."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return None
    sign = 1 if spec.mode == "min" else -1
    best = min(complete, key=lambda t: (sign * t.value, t.number))
    return _view(best, spec, model_dir)
