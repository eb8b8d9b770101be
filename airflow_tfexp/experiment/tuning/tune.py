"""`tune`: learn_runner.tune's successor. Trials of one experiment_fn, in this process.

Each trial is `experiment_fn(run_config, params)` with the trial's suggested values in `params`
and its own model dir in `run_config`; an experiment_fn with a `trial` argument also gets the
`Trial` view. A trial trains with `train_and_evaluate` plus a `PruningHook`, without exporting
(only the best trial is exported, at the end), and is told to the study once it is over.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from airflow_tfexp.experiment.tuning.pruning import PruningHook
from airflow_tfexp.experiment.tuning.study import StudySpec, open_study
from airflow_tfexp.experiment.tuning.trials import (
    FAILURE_ATTR,
    Trial,
    ask_trials,
    best_trial,
    complete_trial,
    find_trial,
    live_trial,
    study_rows,
    wave_trials,
)

log = logging.getLogger(__name__)


def _callable(experiment_fn: Any) -> Callable[..., Any]:
    if isinstance(experiment_fn, str):
        from airflow_tfexp.experiment.experiment_fn import load_experiment_fn

        return load_experiment_fn(experiment_fn, "experiment_fn")
    if not callable(experiment_fn):
        raise ValueError(
            f"Invalid value for `experiment_fn`. Received: {experiment_fn!r}. Expected a "
            'callable or "module:function".'
        )
    return experiment_fn


def build_trial_experiment(
    experiment_fn: Any, trial: Trial, params: Mapping[str, Any] | None, run_config: Any = None
) -> Any:
    """`experiment_fn(run_config, params)` for this trial: the trial's model dir, the base
    params with the trial's values over them (and `trial=` for a function that takes it)."""
    from airflow_tfexp.experiment.experiment import Experiment
    from airflow_tfexp.experiment.run_config import RunConfig

    fn = _callable(experiment_fn)
    config = (run_config or RunConfig()).replace(model_dir=trial.model_dir)
    merged = {**(params or {}), **trial.params}
    if "trial" in inspect.signature(fn).parameters:
        experiment = fn(config, merged, trial=trial)
    else:
        experiment = fn(config, merged)
    if not isinstance(experiment, Experiment):
        raise ValueError(
            f"`experiment_fn` must return an Experiment. Received: {type(experiment).__name__}."
        )
    return experiment


def train_trial(experiment: Any, study: Any, spec: StudySpec, trial: Trial) -> dict[str, Any]:
    """Train and evaluate the trial (resuming from its checkpoints), pruned when the study says
    so, without exporting; then tell the study. Returns the trial's row."""
    from optuna.trial import TrialState

    frozen = find_trial(study, trial.number)
    if frozen.state != TrialState.RUNNING:
        log.info(
            "Trial %d is already %s in the study: nothing to train.",
            trial.number,
            frozen.state.name,
        )
        return complete_trial(study, spec, trial)
    experiment.extend_train_hooks([PruningHook(study, spec, trial.number, trial.model_dir)])
    experiment.reset_export_strategies([])  # the sweep exports its best trial only
    log.info("Trial %d: %s in %s.", trial.number, trial.params, trial.model_dir)
    experiment.train_and_evaluate()
    row = _checked(complete_trial(study, spec, trial))
    log.info(
        "Trial %d %s: %s=%s%s.",
        trial.number,
        row["state"],
        spec.metric,
        row["value"],
        f" (pruned at step {row['pruned_at_step']})" if row["pruned_at_step"] is not None else "",
    )
    return row


def _run_one(
    experiment_fn: Any,
    study: Any,
    spec: StudySpec,
    trial: Trial,
    params: Mapping[str, Any] | None,
    model_dir: str,
    catch: tuple[type[Exception], ...],
) -> None:
    """One trial of `tune`: an exception fails it (told, so a rerun does not retry it forever)
    and is raised unless `catch` names it; an interrupt leaves it to resume."""
    from optuna.trial import TrialState

    from airflow_tfexp.experiment.storage.ownership import check_safe_to_write

    check_safe_to_write(model_dir)  # no link under the sweep's dir leads out (trials/<n>)
    try:
        train_trial(build_trial_experiment(experiment_fn, trial, params), study, spec, trial)
    except Exception as err:
        if find_trial(study, trial.number).state == TrialState.RUNNING:
            reason = f"{type(err).__name__}: {err}"
            live_trial(study, trial.number).set_user_attr(FAILURE_ATTR, reason[:1000])
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            log.warning("Trial %d failed: %s", trial.number, reason)
        if not isinstance(err, catch):
            raise


class TrialFailedError(ValueError):
    """A trial trained but could not be told a value (its objective metric is missing, say)."""


def _checked(row: dict[str, Any]) -> dict[str, Any]:
    if row["state"] == "fail" and row.get("failure"):
        raise TrialFailedError(f"Trial {row['number']} failed: {row['failure']}.")
    return row


def export_trial(experiment_fn: Any, trial: Trial, params: Mapping[str, Any] | None) -> list:
    """Run the experiment's export strategies on the trial's latest checkpoint."""
    return build_trial_experiment(experiment_fn, trial, params).export()


def tune(
    experiment_fn: Any,
    study: StudySpec | Mapping[str, Any],
    trials: int,
    params: Mapping[str, Any] | None = None,
    *,
    model_dir: str,
    storage_url: str | None = None,
    timeout_secs: float | None = None,
    worker: str = "tune",
    export_best: bool = True,
    catch: tuple[type[Exception], ...] = (),
) -> dict[str, Any]:
    """Run the sweep's trials one after another until the study has `trials` (or
    `timeout_secs` have passed), then export the best one.

    :param experiment_fn: `experiment_fn(run_config, params[, trial=])` or "module:function".
    :param study: a `StudySpec` or its dict (search space, objective, sampler, pruner, storage).
    :param trials: how many trials the study should hold in all (a restart counts those it has).
    :param params: the base params every trial starts from.
    :param model_dir: the sweep's model dir: trial n trains in `<model_dir>/trials/<n>`.
    :param worker: this process's name in the study: a restarted worker resumes the trial it
        left unfinished (killed, interrupted); processes sharing one study need distinct names.
    :param catch: exceptions of a trial that fail only that trial (as Optuna's `catch`); any
        other exception fails the trial and stops the sweep (a rerun goes on with new trials).
    :return: ``{"trials": [rows], "best": row or None, "export_paths": [...]}``.
    """
    spec = StudySpec.from_value(study)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"Invalid value for `trials`. Received: {trials!r}. Expected an int >= 1.")
    opened = open_study(spec, model_dir, storage_url)
    while True:
        from optuna.trial import TrialState

        unfinished = [
            t
            for t in wave_trials(opened, spec, model_dir, worker)
            if find_trial(opened, t.number).state == TrialState.RUNNING
        ]
        if unfinished:
            log.info("Resuming trial %d, left unfinished by this worker.", unfinished[0].number)
        batch = unfinished[:1] or ask_trials(
            opened, spec, model_dir, 1, total=trials, wave=worker, timeout_secs=timeout_secs
        )
        if not batch:
            break
        _run_one(experiment_fn, opened, spec, batch[0], params, model_dir, catch)
    best = best_trial(opened, spec, model_dir)
    paths = export_trial(experiment_fn, best, params) if best and export_best else []
    rows = study_rows(opened, spec, model_dir)
    return {
        "trials": rows,
        "best": next((r for r in rows if best and r["number"] == best.number), None),
        "export_paths": paths,
    }
