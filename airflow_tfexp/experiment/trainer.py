"""Trainer: the training side of an Experiment, and what it tells the other processes.

It runs the estimator's `train` with the experiment's hooks and listeners, holds a worker back
as the seed did (`min(60, 5*k)` s, or until the global step reaches `int(8000*log(k+1))`), and
(on the chief) clears the completion marker when training starts and writes it when training
ends, so evaluators and parameter servers know when to stop. The chief holds the model dir's
trainer lease from `start` to `finish` (or a failure), so that a second trainer fails fast.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from airflow_tfexp.experiment._clock import Clock
from airflow_tfexp.experiment.evaluation import coordination
from airflow_tfexp.experiment.evaluation.evaluator import CheckpointEvaluator
from airflow_tfexp.experiment.storage.checkpoints import latest_checkpoint
from airflow_tfexp.experiment.training_lease import LeaseSaveGuard, TrainerLease

log = logging.getLogger(__name__)


class Trainer:
    """Train on behalf of one experiment.

    :param estimator: anything with `train(input_fn, hooks, steps, max_steps, saving_listeners)`,
        a `model_dir` and (optionally) a `config` naming this task (`task_id`, `is_chief`).
    :param input_fn: the training input.
    :param hooks: training hooks run by every `train` call.
    :param saving_listeners: checkpoint-saver listeners run by every `train` call.
    :param exporters: export strategies whose `serving_input_fn` is checked before training.
    :param train_steps: the experiment's final step (None: until the input runs out).
    :param clock: sleeps while a worker waits its turn.
    :param check_interval_secs: how often a waiting worker looks at the global step.
    """

    def __init__(
        self,
        estimator: Any,
        input_fn: Callable[[], Any],
        *,
        hooks: Sequence[Any],
        saving_listeners: Sequence[Any],
        exporters: Sequence[Any] = (),
        train_steps: int | None,
        clock: Clock,
        check_interval_secs: float,
    ) -> None:
        self.estimator = estimator
        self.input_fn = input_fn
        self.hooks = list(hooks)
        self.saving_listeners = list(saving_listeners)
        self.exporters = list(exporters)
        self.train_steps = train_steps
        self.clock = clock
        self.check_interval_secs = check_interval_secs
        self._lease: TrainerLease | None = None

    @property
    def model_dir(self) -> str:
        return str(self.estimator.model_dir)

    def _config_value(self, name: str, default: Any) -> Any:
        return getattr(getattr(self.estimator, "config", None), name, default)

    @property
    def is_chief(self) -> bool:
        return bool(self._config_value("is_chief", True))

    def latest_step(self) -> int:
        """The global step of the newest complete checkpoint (0 without one)."""
        latest = latest_checkpoint(self.model_dir)
        return latest.global_step if latest else 0

    def wait_for_turn(self, delay_secs: float | None, by_global_step: bool) -> None:
        """Wait `delay_secs`; None applies the seed's per-worker delay for this task."""
        task_id = int(self._config_value("task_id", 0) or 0)
        if delay_secs is None and by_global_step:
            self._wait_for_global_step(int(8000 * math.log(task_id + 1)))
            return
        delay = min(60, task_id * 5) if delay_secs is None else delay_secs
        if delay:
            log.info("Waiting %.3g s before training (task %d).", delay, task_id)
            self.clock.sleep(delay)

    def _wait_for_global_step(self, target: int) -> None:
        while True:
            step = self.latest_step()
            if step >= target:
                return
            log.info(
                "Waiting for global step %d before training (delay_workers_by_global_step); now %d.",
                target,
                step,
            )
            self.clock.sleep(self.check_interval_secs)

    def start(self) -> None:
        """Training begins (chief only): take the trainer lease (TrainerLeaseError naming the
        holder when another trainer has it); the exporters' serving inputs are checked against
        the model; an earlier run's completion marker no longer holds."""
        if self.is_chief:
            if self._lease is None:
                self._lease = TrainerLease(self.model_dir)
                self._lease.acquire()
            try:
                for exporter in self.exporters:
                    exporter.check_serving(self.estimator, self.input_fn)
                coordination.clear_completion_marker(self.model_dir)
            except BaseException:
                self.release()
                raise

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """`start`, and the lease given back however the block ends (a failed evaluation or
        export between training rounds included)."""
        self.start()
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        """Give the trainer lease back (training ended, or failed)."""
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def train(
        self,
        *,
        steps: int | None = None,
        max_steps: int | None = None,
        listeners: Sequence[Any] = (),
    ) -> None:
        # the lease's guard goes only to an estimator that takes this engine's listeners (a
        # bring-your-own one gets its own as they are; its lease is checked after `train`)
        guarded = self._lease if getattr(self.estimator, "accepts_training_hooks", False) else None
        save_guard = [LeaseSaveGuard(guarded)] if guarded else []
        try:
            self.estimator.train(
                input_fn=self.input_fn,
                hooks=list(self.hooks),
                steps=steps,
                max_steps=max_steps,
                saving_listeners=[*self.saving_listeners, *listeners, *save_guard],
            )
        except BaseException:
            self.release()
            raise
        if self._lease:
            self._lease.check()

    def finish(self) -> None:
        """Write the completion marker (chief only) so evaluators and servers can stop."""
        if not self.is_chief:
            return
        try:
            step = self.latest_step()
            reason = coordination.completion_reason(step, self.train_steps)
            coordination.write_completion_marker(self.model_dir, step, reason)
        finally:
            self.release()
        log.info("Training complete at global step %d (%s).", step, reason)


def train_and_evaluate_in_iterations(
    trainer: Trainer,
    evaluator: CheckpointEvaluator,
    input_fn: Callable[[], Any],
    *,
    eval_steps: int | None,
    train_steps: int | None,
    per_iteration: int,
    predicate: Callable[[Any], bool] | None,
) -> tuple[dict[str, Any] | None, list[str | None] | None]:
    """`Experiment.continuous_train_and_eval`: train `per_iteration` steps, evaluate, export,
    repeated until `train_steps`, the end of the input, or the predicate says stop."""
    with trainer.session():
        eval_result: dict[str, Any] | None = None
        export_results: list[str | None] | None = None
        while predicate is None or predicate(eval_result):
            step = trainer.latest_step()
            if train_steps is not None and step >= train_steps:
                log.info(
                    "continuous_train_and_eval: global step %d reached train_steps=%d.",
                    step,
                    train_steps,
                )
                break
            target = (
                step + per_iteration
                if train_steps is None
                else min(step + per_iteration, train_steps)
            )
            trainer.train(max_steps=target)
            latest = latest_checkpoint(trainer.model_dir)
            eval_result = evaluator.evaluate(
                input_fn, name=None, checkpoint=latest, steps=eval_steps
            )
            ran_out = latest.global_step < target
            final = ran_out or (train_steps is not None and latest.global_step >= train_steps)
            export_results = evaluator.export(eval_result, latest, is_the_final_export=final)
            if ran_out:
                log.info(
                    "continuous_train_and_eval: the training input ran out at step %d.",
                    latest.global_step,
                )
                break
        else:
            log.info("continuous_train_and_eval: the predicate said stop.")
        trainer.finish()
    return eval_result, export_results
