"""ContinuousEvalOperator: continuous evaluation that waits for checkpoints in the triggerer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_tfexp._airflow import (
    DEFER_SETTLE_SECS,
    is_templated,
    jsonable,
    raise_on_error_event,
    run_start_timestamp,
    settled_reschedule,
    stops_on_sigterm,
)
from airflow_tfexp._config import default_deferrable
from airflow_tfexp.experiment._validation import check_optional_seconds
from airflow_tfexp.experiment.evaluation.results import check_evaluator_name
from airflow_tfexp.operators._base import ExperimentBaseOperator, checkpoint_summary
from airflow_tfexp.operators._lineage import note_metrics

if TYPE_CHECKING:
    from airflow.sdk import Context

MIN_POLL_SECS = 0.5


def evaluator_id(context: Any) -> str | None:
    """One evaluator registration for this task instance across its deferrals and reschedules
    (its passes run in new processes), distinct from every other evaluator's, even of one name."""
    import hashlib

    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return None
    key = f"{ti.dag_id}\0{ti.run_id}\0{ti.task_id}\0{getattr(ti, 'map_index', -1)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class ContinuousEvalOperator(ExperimentBaseOperator):
    """`Experiment.continuous_eval`, deferrable: evaluate what is new, then wait in the triggerer
    (no worker slot held) for the next checkpoint; finish after the final checkpoint (completion
    marker or `train_steps`) or when the experiment's predicate says stop.

    Evaluations are recorded in `model_dir/eval_<name>/results.jsonl`; a retry never evaluates a
    recorded checkpoint again.

    :param throttle_delay_secs: at least this long between two passes (default: the experiment's
        `continuous_eval_throttle_secs`); also the interval at which the trigger looks.
    :param evaluate_checkpoint_only_once: False re-evaluates the latest checkpoint every pass.
    :param every_checkpoint: evaluate every checkpoint not yet evaluated, in step order, instead
        of only the latest (checkpoints it still needs are kept from garbage collection).
    :param name: the evaluator name.
    :param deferrable: wait in the triggerer (default from `[tfexp] default_deferrable`);
        False runs the whole loop in the worker, unless `reschedule`.
    :param reschedule: when not deferrable, run one pass per try and free the worker slot in
        between (the task is rescheduled after the throttle, like a sensor in reschedule mode;
        this also works where no triggerer runs, e.g. under `dag.test()`).
    :param keep_worker_secs: deferrable only: after a pass, keep looking in the worker this long
        for the next checkpoint before deferring (0: defer at once). Checkpoints that come often
        are then evaluated without a resume each (a new process, TensorFlow imported again), and
        the task defers only when training goes quiet.
    :param defer_settle_secs: once deferred, the trigger's first look waits this long, and a
        rescheduled try is requeued no sooner (not under dag.test()), so the task is never
        resumed before the scheduler processed its previous exit (apache/airflow#72716 fails a
        task resumed that fast).
    :return: ``{"model_dir", "checkpoint_path", "global_step", "metrics", "evaluated_steps",
        "passes", "finished"}``: the last evaluation, and the steps this task evaluated over how
        many passes (carried across deferrals in the defer kwargs; `dag.test()` does not carry
        them, so there they count the last pass only).
    """

    template_fields: Sequence[str] = (*ExperimentBaseOperator.template_fields, "name")

    def __init__(
        self,
        *,
        throttle_delay_secs: float | None = None,
        evaluate_checkpoint_only_once: bool = True,
        every_checkpoint: bool = False,
        name: str = "continuous",
        deferrable: bool | None = None,
        reschedule: bool = False,
        keep_worker_secs: float = 30.0,
        defer_settle_secs: float = DEFER_SETTLE_SECS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reschedule = reschedule
        self.keep_worker_secs = check_optional_seconds("keep_worker_secs", keep_worker_secs)
        self.defer_settle_secs = check_optional_seconds("defer_settle_secs", defer_settle_secs)
        self.throttle_delay_secs = check_optional_seconds(
            "throttle_delay_secs", throttle_delay_secs
        )
        self.evaluate_checkpoint_only_once = evaluate_checkpoint_only_once
        self.every_checkpoint = every_checkpoint
        if not is_templated(name):
            check_evaluator_name(name)
        self.name = name
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def check_rendered(self) -> None:
        super().check_rendered()
        check_evaluator_name(self.name)

    def run_step(self, context: Context) -> dict[str, Any]:
        if not self.deferrable and self.reschedule:
            return self._pass_then_reschedule(context)
        if not self.deferrable:
            experiment = self.build_experiment(context)
            last = experiment.continuous_eval(
                delay_secs=0,
                throttle_delay_secs=self.throttle_delay_secs,
                evaluate_checkpoint_only_once=self.evaluate_checkpoint_only_once,
                name=self.name,
                every_checkpoint=self.every_checkpoint,
            )
            return self._result(experiment, last, [], 1, "continuous_eval returned")
        return self._pass(context, first=True, evaluated=[], passes=0)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        evaluated: list[int] | None = None,
        passes: int = 0,
    ) -> dict[str, Any]:
        raise_on_error_event(self.task_id, self.model_dir, event)
        with stops_on_sigterm(self.task_id), self.step_environment(context):
            result = self._pass(
                context, first=False, evaluated=list(evaluated or []), passes=passes
            )
            return self.remember_for_lineage(context, result)

    def note_lineage(self, step: Any, result: Any) -> None:
        super().note_lineage(step, result)
        note_metrics(step, result, self.name)

    def _pass(
        self, context: Context, *, first: bool, evaluated: list[int], passes: int
    ) -> dict[str, Any]:
        experiment = self.build_experiment(context)
        poll = max(MIN_POLL_SECS, self._throttle(experiment))
        while True:
            outcome = experiment.continuous_eval_pass(
                name=self.name,
                every_checkpoint=self.every_checkpoint,
                evaluate_checkpoint_only_once=self.evaluate_checkpoint_only_once,
                first=first,
                evaluator_id=evaluator_id(context),
            )
            first = False
            evaluated += [r["global_step"] for r in outcome.results]
            passes += 1
            if outcome.finished:
                return self._result(
                    experiment, outcome.last_result, evaluated, passes, outcome.finished
                )
            after = outcome.watermark if self.evaluate_checkpoint_only_once else None
            if not self._next_checkpoint_in_worker(context, after, poll):
                break
        self.log.info(
            "Evaluated %d checkpoint(s) in this pass and nothing newer came for %s s; deferring "
            "until a checkpoint newer than step %s appears or training completes (looking every "
            "%s s).",
            len(outcome.results),
            self.keep_worker_secs,
            after,
            poll,
        )
        from airflow_tfexp.triggers.checkpoint import defer_for_checkpoints

        defer_for_checkpoints(
            self,
            model_dir=self.model_dir,
            after_step=after if after is not None else -1,
            poll_interval=poll,
            completed_after=run_start_timestamp(context),
            gcp_conn_id=self.gcp_conn_id,
            settle_secs=self.defer_settle_secs or 0,
            kwargs={"evaluated": evaluated, "passes": passes},
            timeout=self.execution_timeout or timedelta(days=7),
        )

    def _next_checkpoint_in_worker(self, context: Context, after: int | None, poll: float) -> bool:
        """Look every `poll` s, for up to `keep_worker_secs`, for what the trigger would report."""
        from airflow_tfexp.experiment.evaluation.model_dir_scan import (
            checkpoints_to_report,
            scan_model_dir,
        )

        deadline = time.monotonic() + (self.keep_worker_secs or 0)
        scan = None
        while time.monotonic() + poll <= deadline:
            time.sleep(poll)
            scan = scan_model_dir(self.model_dir, None, scan, watching=True)
            if checkpoints_to_report(
                scan,
                after if after is not None else -1,
                completed_after=run_start_timestamp(context),
            ):
                return True
        return False

    def _pass_then_reschedule(self, context: Context) -> dict[str, Any]:
        experiment = self.build_experiment(context)
        outcome = experiment.continuous_eval_pass(
            name=self.name,
            every_checkpoint=self.every_checkpoint,
            evaluate_checkpoint_only_once=self.evaluate_checkpoint_only_once,
            first=outcome_is_first(experiment, self.name),
            evaluator_id=evaluator_id(context),
        )
        steps = [r["global_step"] for r in outcome.results]
        if outcome.finished:
            return self._result(experiment, outcome.last_result, steps, 1, outcome.finished)
        throttle = self._throttle(experiment)
        self.log.info(
            "Evaluated steps %s in this pass; rescheduling in %s s to look for newer checkpoints.",
            steps,
            throttle,
        )
        wanted = datetime.now(UTC) + timedelta(seconds=throttle)
        raise settled_reschedule(wanted, self.defer_settle_secs, self.log)

    def _throttle(self, experiment: Any) -> float:
        if self.throttle_delay_secs is not None:
            return self.throttle_delay_secs
        return experiment.continuous_eval_throttle_secs

    def _result(
        self, experiment: Any, last: dict | None, evaluated: list[int], passes: int, finished: str
    ) -> dict[str, Any]:
        step = last.get("global_step") if last else None
        path = next(
            (c.checkpoint_path for c in experiment.checkpoints() if c.global_step == step), None
        )
        return {
            **checkpoint_summary(experiment, path),
            "global_step": step,
            "metrics": jsonable(last) if last else None,
            "evaluated_steps": evaluated,
            "passes": passes,
            "finished": finished,
        }


def outcome_is_first(experiment: Any, name: str) -> bool:
    """Whether no evaluation is recorded yet (the predicate is then asked with None first)."""
    from airflow_tfexp.experiment.evaluation.results import evaluated_steps

    return not evaluated_steps(experiment.model_dir, name)
