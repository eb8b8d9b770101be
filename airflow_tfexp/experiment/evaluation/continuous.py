"""Continuous evaluation, one pass at a time.

A pass evaluates the checkpoints that are new (the latest, or every one not yet evaluated, in
step order), exports after each, and says whether continuous evaluation is over: the final
checkpoint was evaluated (completion marker or `train_steps`) or the predicate said stop.
`Experiment.continuous_eval` loops over passes with a throttle; the deferrable Airflow operator
runs one pass per wake-up and waits for the next checkpoint in the triggerer in between.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from airflow_tfexp.experiment._clock import Clock
from airflow_tfexp.experiment.evaluation import coordination
from airflow_tfexp.experiment.evaluation.evaluator import CheckpointEvaluator
from airflow_tfexp.experiment.evaluation.results import evaluated_steps, read_results
from airflow_tfexp.experiment.storage.checkpoints import CheckpointInfo, is_complete, select_pending

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EvaluationPass:
    """What one pass did and whether continuous evaluation is over."""

    results: list[dict[str, Any]]  # evaluations made in this pass, in step order
    last_result: dict[str, Any] | None  # the newest evaluation, this pass or recorded before
    watermark: int | None  # the highest evaluated step
    finished: str | None  # why it is over, or None to wait for the next checkpoint


class ContinuousEvaluation:
    """The state shared by the passes of one continuous evaluator."""

    def __init__(
        self,
        evaluator: CheckpointEvaluator,
        input_fn: Callable[[], Any],
        *,
        eval_steps: int | None,
        train_steps: int | None,
        name: str,
        every_checkpoint: bool,
        only_once: bool,
        predicate: Callable[[Mapping[str, Any] | None], bool] | None,
        export: bool,
        throttle_secs: float,
        evaluator_id: str | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.input_fn = input_fn
        self.eval_steps = eval_steps
        self.train_steps = train_steps
        self.name = name
        self.every_checkpoint = every_checkpoint
        self.only_once = only_once
        self.predicate = predicate
        self.export = export
        self.throttle_secs = throttle_secs
        model_dir = evaluator.model_dir
        self.registration = coordination.EvaluatorRegistration(
            model_dir,
            name,
            every_checkpoint,
            stale_after_secs=max(coordination.MIN_STALE_SECS, 3 * throttle_secs),
            **({"instance_id": evaluator_id} if evaluator_id else {}),
        )
        self.evaluated = evaluated_steps(model_dir, name)
        self._reported: set[str] = set()  # damaged checkpoints already logged
        if self.evaluated:
            log.info(
                "Continuous evaluation %r: %d checkpoints already evaluated (up to step %d) "
                "are not evaluated again.",
                name,
                len(self.evaluated),
                max(self.evaluated),
            )
        records = read_results(model_dir, name)
        self.last_result = (
            max(records, key=lambda r: r["global_step"])["metrics"] if records else None
        )

    def start(self) -> bool:
        """Ask the predicate with None, as the original did; False means do not evaluate at all."""
        if self.predicate is not None and not self.predicate(None):
            log.info(
                "Continuous evaluation %r: the predicate said stop before the first evaluation.",
                self.name,
            )
            return False
        return True

    def run_pass(self) -> EvaluationPass:
        name = self.name
        self.registration.heartbeat()
        marker = coordination.current_completion(self.evaluator.model_dir)
        checkpoints, damaged = self.evaluator.checkpoints_and_damage()
        if damaged and damaged not in self._reported:
            self._reported.add(damaged)  # once: it is logged again only if it changes
            log.warning("Continuous evaluation %r: skipping %s.", name, damaged)
        pending = select_pending(
            checkpoints,
            self.evaluated,
            every_checkpoint=self.every_checkpoint,
            only_once=self.only_once,
        )
        if not pending:
            self._log_nothing_to_do(checkpoints)
        results = []
        for checkpoint in pending:
            self.registration.heartbeat(evaluating_step=checkpoint.global_step)
            if not is_complete(checkpoint.checkpoint_path):
                log.info(
                    "Continuous evaluation %r: checkpoint %s was deleted before it could be "
                    "evaluated; skipping it.",
                    name,
                    checkpoint.checkpoint_path,
                )
                continue
            self.last_result = self._evaluate(checkpoint, marker)
            results.append(self.last_result)
            if self.predicate is not None and not self.predicate(self.last_result):
                reason = f"the predicate said stop after step {checkpoint.global_step}"
                return self._outcome(results, reason)
        return self._outcome(results, self._final_step_evaluated(marker))

    def _evaluate(
        self, checkpoint: CheckpointInfo, marker: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        result = self.evaluator.evaluate(
            self.input_fn, name=self.name, checkpoint=checkpoint, steps=self.eval_steps
        )
        self.evaluated.add(checkpoint.global_step)
        if self.export:
            final = self._is_final_step(checkpoint.global_step, marker)
            self.evaluator.export(result, checkpoint, final)
        return result

    def _outcome(self, results: list[dict[str, Any]], finished: str | None) -> EvaluationPass:
        if finished:
            log.info("Continuous evaluation %r: %s; stopping.", self.name, finished)
            self.registration.withdraw()
        return EvaluationPass(
            results=results,
            last_result=self.last_result,
            watermark=max(self.evaluated) if self.evaluated else None,
            finished=finished,
        )

    def _log_nothing_to_do(self, checkpoints: list[CheckpointInfo]) -> None:
        if not checkpoints:
            log.info(
                "Continuous evaluation %r: no checkpoint in %s yet.",
                self.name,
                self.evaluator.model_dir,
            )
        elif self.evaluated:
            log.info(
                "Continuous evaluation %r: no new checkpoint since step %d.",
                self.name,
                max(self.evaluated),
            )
        else:
            log.info("Continuous evaluation %r: no new checkpoint.", self.name)

    def _is_final_step(self, step: int, marker: Mapping[str, Any] | None) -> bool:
        train_steps = self.train_steps
        if train_steps is not None and step >= train_steps:
            return True
        return marker is not None and step >= marker["global_step"]

    def _final_step_evaluated(self, marker: Mapping[str, Any] | None) -> str | None:
        if not self.evaluated:
            return None
        top, train_steps = max(self.evaluated), self.train_steps
        if train_steps is not None and top >= train_steps:
            return f"evaluated step {top} >= train_steps={train_steps}"
        if marker is not None and top >= marker["global_step"]:
            return (
                f"evaluated the final checkpoint (step {marker['global_step']}: {marker['reason']})"
            )
        return None


def evaluate_continuously(
    evaluation: ContinuousEvaluation, delay_secs: float | None, clock: Clock
) -> dict[str, Any] | None:
    """`Experiment.continuous_eval`'s loop: wait `delay_secs`, then run passes at most one per
    `throttle_secs` until one says evaluation is over; returns the last result."""
    if delay_secs:
        log.info("Waiting %.3g s before continuous evaluation %r.", delay_secs, evaluation.name)
        clock.sleep(delay_secs)
    if not evaluation.start():
        return None
    try:
        while True:
            started = clock.time()
            outcome = evaluation.run_pass()
            if outcome.finished:
                return outcome.last_result
            remaining = evaluation.throttle_secs - (clock.time() - started)
            if remaining > 0:
                log.info(
                    "Continuous evaluation %r: throttled for %.3g s "
                    "(continuous_eval_throttle_secs=%s).",
                    evaluation.name,
                    remaining,
                    evaluation.throttle_secs,
                )
                clock.sleep(remaining)
    finally:
        evaluation.registration.withdraw()
