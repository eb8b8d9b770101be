"""A sweep as tasks: ask the study for a wave of trials, train each as a mapped task, tell the
study how they ended, then start the next wave (a new run of the DAG) or export the best.

A wave is one DAG run: at most `n` mapped trials, never over `[core] max_map_length`, however
many trials the sweep holds. The study (Optuna, in its storage) is the sweep's memory: a retried
task asks it again and gets the same trials, a trial is told once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator

from airflow_tfexp._airflow import is_templated, max_map_length
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.experiment.tuning.study import StudySpec
from airflow_tfexp.names import BEST_TRIAL_KEY, DEFAULT_GCP_CONN_ID
from airflow_tfexp.operators._ownership import check_experiment_id

if TYPE_CHECKING:
    from airflow.sdk import Context


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected an int >= {minimum}."
        )
    return value


class _SweepOperator(BaseOperator):
    """What the sweep's own tasks share.

    :param study: the study, as a `StudySpec` or its dict (checked at parse time).
    :param model_dir: the sweep's model dir (templated); trial n trains in `trials/<n>`.
    :param trials: how many trials the sweep holds in all.
    :param timeout: seconds after the study's first trial when no new trial is asked for.
    :param study_conn_id: an Airflow connection naming the study's database (its SQLAlchemy
        URL); None: the study spec's storage (a journal file in a local model dir by default).
    :param experiment_id: the experiment the sweep writes for (None: this DAG's id).
    :param gcp_conn_id: the connection whose credentials reach a gs:// model dir.
    :param study_name: the study's name (templated), instead of the spec's: one study per
        model dir when model dirs are templated and the study is in a shared database.
    """

    template_fields: Sequence[str] = ("model_dir", "study_name")
    ui_color = "#c6e2ff"

    def __init__(
        self,
        *,
        study: StudySpec | dict[str, Any],
        model_dir: str,
        trials: int,
        timeout: float | None = None,
        study_conn_id: str | None = None,
        experiment_id: str | None = None,
        gcp_conn_id: str = DEFAULT_GCP_CONN_ID,
        study_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id
        self.study_name = study_name
        self.study = StudySpec.from_value(study).as_dict()
        if not is_templated(model_dir):
            parse_model_dir(model_dir)
        self.model_dir = model_dir
        self.trials = _count("trials", trials)
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise ValueError(
                f"Invalid value for `timeout`. Received: {timeout!r}. Expected seconds > 0 or None."
            )
        self.timeout = timeout
        self.study_conn_id = study_conn_id
        check_experiment_id(experiment_id)
        self.experiment_id = experiment_id

    def execute(self, context: Context) -> Any:
        from airflow_tfexp._airflow import stops_on_sigterm
        from airflow_tfexp.hooks.gcp_credentials import gcp_credentials

        with (
            stops_on_sigterm(self.task_id),
            gcp_credentials(self.gcp_conn_id, self.model_dir, self.log),
        ):
            return self.run_sweep_step(context)

    def run_sweep_step(self, context: Context) -> Any:
        raise NotImplementedError

    def snapshot(self, study: Any, spec: StudySpec) -> None:
        """The study as the Experiments page shows it (`sweep.json` in the model dir)."""
        from airflow_tfexp.experiment.tuning.snapshot import write_sweep_snapshot

        write_sweep_snapshot(study, spec, self.model_dir, self.trials)

    def open_study(self) -> tuple[Any, StudySpec]:
        """The rendered model dir checked (inside the roots, this experiment's), then the study."""
        from airflow_tfexp.operators._ownership import check_inside_roots, claim_for_writing
        from airflow_tfexp.operators._tuning import open_sweep_study

        parse_model_dir(self.model_dir)
        check_inside_roots(self.model_dir, "model_dir")
        claim_for_writing(self.model_dir, self.experiment_id or self.dag_id, "model_dir", self.log)
        return open_sweep_study(self.study, self.model_dir, self.study_conn_id, self.study_name)


class SuggestTrialsOperator(_SweepOperator):
    """Ask the study for this wave's trials: up to `n` new ones (never more than `trials` in
    the sweep, none after `timeout`); a retry of the same DAG run gets the same trials.

    :param n: trials in a wave (at most `[core] max_map_length`: each is a mapped task).
    :return: ``[{"number", "params", "model_dir", "study_name"}, ...]``: expand the trial tasks
        over it (``TrainAndEvaluateOperator.partial(..., study=...).expand(trial=...)``).
    """

    def __init__(self, *, n: int, trials: int | None = None, **kwargs: Any) -> None:
        self.n = _count("n", n)
        super().__init__(trials=self.n if trials is None else trials, **kwargs)
        if self.n > max_map_length():
            raise ValueError(
                f"Invalid value for `n`. Received: {n!r}. A wave's trials are mapped tasks: at "
                f"most [core] max_map_length ({max_map_length()}); the sweep runs in more waves."
            )

    def run_sweep_step(self, context: Context) -> list[dict[str, Any]]:
        from airflow_tfexp.experiment.tuning.trials import (
            close_stale_trials,
            suggest_trials,
        )

        study, spec = self.open_study()
        wave = context["run_id"]
        if getattr(self.dag, "max_active_runs", None) == 1:  # no other wave can be running
            close_stale_trials(study, spec, self.model_dir, wave)
        trials = suggest_trials(
            spec,
            self.model_dir,
            min(self.n, max_map_length()),
            total=self.trials,
            wave=wave,
            timeout_secs=self.timeout,
            study=study,
        )

        for trial in trials:
            self.log.info("Trial %d: %s", trial.number, trial.params)
        self.snapshot(study, spec)
        return [trial.as_dict() for trial in trials]


class CompleteTrialsOperator(_SweepOperator):
    """Tell the study how each trial of this run's wave ended, from its results records
    (idempotent: a trial already told is left as it is); runs whatever the trials did.

    :return: ``{"wave": [rows], "best": row or None, "finished", "trials", "done"}``; the best
        trial also goes to XCom key "best_trial", for the steps that export and publish it.
    """

    def __init__(self, *, trigger_rule: str = "all_done", **kwargs: Any) -> None:
        super().__init__(trigger_rule=trigger_rule, **kwargs)

    def run_sweep_step(self, context: Context) -> dict[str, Any]:
        import time

        from optuna.trial import TrialState

        from airflow_tfexp.experiment.tuning.study import STARTED_ATTR
        from airflow_tfexp.experiment.tuning.trials import (
            best_trial,
            complete_trial,
            wave_trials,
        )

        study, spec = self.open_study()
        rows = [
            complete_trial(study, spec, t)
            for t in wave_trials(study, spec, self.model_dir, context["run_id"])
        ]
        for row in rows:
            self.log.info(
                "Trial %d %s: %s=%s%s",
                row["number"],
                row["state"],
                spec.metric,
                row["value"],
                f" (pruned at step {row['pruned_at_step']})"
                if row["pruned_at_step"] is not None
                else "",
            )
        all_trials = study.get_trials(deepcopy=False)
        finished = sum(t.state != TrialState.RUNNING for t in all_trials)
        limit = min(self.trials, spec.max_trials() or self.trials)
        started = study.user_attrs.get(STARTED_ATTR, time.time())
        timed_out = self.timeout is not None and time.time() - started > self.timeout
        done = (len(all_trials) >= limit and finished == len(all_trials)) or timed_out
        best = best_trial(study, spec, self.model_dir)
        best_row = next(
            (r for r in self._rows(study, spec) if best and r["number"] == best.number), None
        )
        context["ti"].xcom_push(key=BEST_TRIAL_KEY, value=best.as_dict() if best else None)
        self.snapshot(study, spec)
        self.log.info(
            "The study has %d of %d trials (%d finished)%s; best: %s.",
            len(all_trials),
            limit,
            finished,
            ", past its timeout" if timed_out else "",
            f"trial {best.number} ({spec.metric}={best_row['value']})" if best else "none yet",
        )
        return {
            "wave": rows,
            "best": best_row,
            "finished": finished,
            "trials": len(all_trials),
            "done": done,
        }

    def _rows(self, study: Any, spec: StudySpec) -> list[dict[str, Any]]:
        from airflow_tfexp.experiment.tuning.trials import study_rows

        return study_rows(study, spec, self.model_dir)


class NextWaveOperator(BaseBranchOperator):
    """After a wave: `continue_task_id` (start the next wave) while the sweep is not done,
    else `finish_task_id` (export the best trial)."""

    def __init__(
        self,
        *,
        complete_task_id: str = "complete_trials",
        continue_task_id: str = "continue_sweep",
        finish_task_id: str = "export_best",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.complete_task_id = complete_task_id
        self.continue_task_id = continue_task_id
        self.finish_task_id = finish_task_id

    def choose_branch(self, context: Context) -> str:
        outcome = context["ti"].xcom_pull(task_ids=self.complete_task_id) or {}
        if (outcome.get("done") or not outcome.get("wave")) and not outcome.get("best"):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"The sweep ended with no complete trial ({outcome.get('trials')} trials, all "
                "pruned or failed): nothing to export. See complete_trials' log for each trial."
            )
        if outcome.get("done"):
            self.log.info(
                "The sweep is done (%s trials): exporting the best.", outcome.get("trials")
            )
            return self.finish_task_id
        if not outcome.get("wave"):  # another wave would get none either
            self.log.info(
                "This wave had no trial to run (the study holds %s, %s finished): the sweep stops.",
                outcome.get("trials"),
                outcome.get("finished"),
            )
            return self.finish_task_id
        self.log.info(
            "The sweep has %s trials, %s finished: starting the next wave.",
            outcome.get("trials"),
            outcome.get("finished"),
        )
        return self.continue_task_id


class ContinueSweepOperator(TriggerDagRunOperator):
    """Start the sweep's next wave: a new run of this DAG with this run's conf (the DAG's
    `max_active_runs=1` keeps waves one after another)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_dag_id", "{{ dag.dag_id }}")
        kwargs.setdefault("wait_for_completion", False)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> Any:
        self.conf = dict(context["dag_run"].conf or {})
        return super().execute(context)
