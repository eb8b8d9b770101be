"""Experiment: tf.contrib.learn's train / evaluate / continuous_eval / export loops on TF 2.

Faithful to the original contract (names, arguments, defaults, delays, throttling, predicate,
only-once evaluation) and better where its users suffered: every checkpoint can be evaluated, the
evaluator's memory survives restarts (`eval_<name>/results.jsonl`), training writes a completion
marker so evaluators and parameter servers stop, and every skip or wait is logged with its reason.
The estimator is duck-typed: anything with `train`, `evaluate`, `model_dir` (and
`export_saved_model` when exporting) works; `KerasEstimator` is the built-in one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_tfexp.experiment._clock import Clock
from airflow_tfexp.experiment._validation import check_optional_callable, check_optional_seconds
from airflow_tfexp.experiment.arguments import (
    ExperimentArguments,
    check_estimator,
    check_export_strategies,
    check_input_fns,
)
from airflow_tfexp.experiment.evaluation.continuous import (
    ContinuousEvaluation,
    EvaluationPass,
    evaluate_continuously,
)
from airflow_tfexp.experiment.evaluation.evaluator import CheckpointEvaluator
from airflow_tfexp.experiment.evaluation.in_training import InTrainingEvaluator
from airflow_tfexp.experiment.export.exporters import Exporter
from airflow_tfexp.experiment.hooks import (
    CheckpointSaverListener,
    TrainingHook,
    as_sequence,
)
from airflow_tfexp.experiment.std_server import serve_until_training_complete
from airflow_tfexp.experiment.storage.checkpoints import (
    CheckpointInfo,
    complete_checkpoint,
    list_checkpoints,
    newest_checkpoint,
)
from airflow_tfexp.experiment.trainer import Trainer, train_and_evaluate_in_iterations

log = logging.getLogger(__name__)
Predicate = Callable[[Mapping[str, Any] | None], bool]


def _check_predicate(predicate: Any) -> Predicate | None:
    return check_optional_callable("continuous_eval_predicate_fn", predicate)


class Experiment:
    """Everything needed to train, evaluate and export a model, locally or in a cluster.

    Arguments and defaults are those of `tf.contrib.learn.Experiment`; see the module docstring
    for what is new. `min_eval_frequency=None` means 1 (evaluate at every new checkpoint during
    `train_and_evaluate`); 0 evaluates only at the end.
    """

    def __init__(
        self,
        estimator: Any,
        train_input_fn: Callable[[], Any],
        eval_input_fn: Callable[[], Any],
        eval_metrics: Mapping[str, Any] | None = None,
        train_steps: int | None = None,
        eval_steps: int | None = 100,
        train_monitors: Sequence[TrainingHook] | None = None,
        eval_hooks: Sequence[TrainingHook] | None = None,
        local_eval_frequency: int | None = None,
        eval_delay_secs: float = 120,
        continuous_eval_throttle_secs: float = 60,
        min_eval_frequency: int | None = None,
        delay_workers_by_global_step: bool = False,
        export_strategies: Exporter | Sequence[Exporter] | None = None,
        train_steps_per_iteration: int | None = None,
        checkpoint_and_export: bool = False,
        saving_listeners: Sequence[CheckpointSaverListener] | None = None,
        check_interval_secs: float = 5,
        continuous_eval_predicate_fn: Predicate | None = None,
    ) -> None:
        check_estimator(estimator, eval_metrics)
        check_input_fns(train_input_fn=train_input_fn, eval_input_fn=eval_input_fn)
        if local_eval_frequency is not None:
            warnings.warn(
                "`local_eval_frequency` is deprecated: use `min_eval_frequency` and "
                "train_and_evaluate().",
                FutureWarning,
                stacklevel=2,
            )

        self._estimator = estimator
        self._train_input_fn = train_input_fn
        self._eval_input_fn = eval_input_fn
        self._eval_metrics = eval_metrics
        self._args = ExperimentArguments.checked(
            train_steps=train_steps,
            eval_steps=eval_steps,
            local_eval_frequency=local_eval_frequency,
            eval_delay_secs=eval_delay_secs,
            continuous_eval_throttle_secs=continuous_eval_throttle_secs,
            min_eval_frequency=min_eval_frequency,
            delay_workers_by_global_step=delay_workers_by_global_step,
            train_steps_per_iteration=train_steps_per_iteration,
            checkpoint_and_export=checkpoint_and_export,
            check_interval_secs=check_interval_secs,
        )
        # handed to the estimator as they are: it checks them (its own may take other hooks)
        self._train_monitors = as_sequence(train_monitors, "train_monitors")
        self._eval_hooks = as_sequence(eval_hooks, "eval_hooks")
        self._export_strategies = check_export_strategies(export_strategies, Exporter)
        self._saving_listeners = as_sequence(saving_listeners, "saving_listeners")
        self._continuous_eval_predicate_fn = _check_predicate(continuous_eval_predicate_fn)
        self._clock = Clock()

    # -- read-only view ----------------------------------------------------------------------
    estimator = property(lambda self: self._estimator)
    eval_metrics = property(lambda self: self._eval_metrics)
    train_steps = property(lambda self: self._args.train_steps)
    eval_steps = property(lambda self: self._args.eval_steps)
    min_eval_frequency = property(lambda self: self._args.min_eval_frequency)
    export_strategies = property(lambda self: list(self._export_strategies))
    continuous_eval_throttle_secs = property(lambda self: self._args.continuous_eval_throttle_secs)

    @property
    def model_dir(self) -> str:
        return os.fspath(self._estimator.model_dir)

    def checkpoints(self) -> list[CheckpointInfo]:
        """The complete checkpoints in the model dir, in step order."""
        return list_checkpoints(self.model_dir)

    def latest_checkpoint(self) -> CheckpointInfo | None:
        """The newest checkpoint, or None; CheckpointError naming the missing files when the
        newest one the state file names is damaged (never the previous one in its place)."""
        return newest_checkpoint(self.model_dir)

    @property
    def trainer(self) -> Trainer:
        """Trains for this experiment and writes the completion marker when training ends."""
        return Trainer(
            self._estimator,
            self._train_input_fn,
            hooks=self._train_monitors,
            saving_listeners=self._saving_listeners,
            exporters=self._export_strategies,
            train_steps=self._args.train_steps,
            clock=self._clock,
            check_interval_secs=self._args.check_interval_secs,
        )

    @property
    def evaluator(self) -> CheckpointEvaluator:
        """Evaluates and records checkpoints and runs the export strategies for this experiment."""
        return CheckpointEvaluator(
            self._estimator,
            eval_metrics=self._eval_metrics,
            eval_hooks=self._eval_hooks,
            export_strategies=self._export_strategies,
            clock=self._clock,
        )

    # -- train ----------------------------------------------------------------------------------
    def train(self, delay_secs: float | None = None) -> Any:
        """Train to `train_steps` after a delay; returns the estimator.

        Without `delay_secs`, worker k waits `min(60, 5*k)` s, or with
        `delay_workers_by_global_step` until the global step reaches `int(8000*log(k+1))`.
        """
        trainer = self.trainer
        trainer.wait_for_turn(
            check_optional_seconds("delay_secs", delay_secs),
            self._args.delay_workers_by_global_step,
        )
        trainer.start()
        trainer.train(max_steps=self._args.train_steps)
        trainer.finish()
        return self._estimator

    # -- evaluate ---------------------------------------------------------------------------
    def evaluate(self, delay_secs: float | None = None, name: str | None = None) -> dict[str, Any]:
        """Wait `delay_secs` (default `eval_delay_secs`), then evaluate the latest checkpoint once."""
        delay = self._eval_delay(delay_secs)
        if delay:
            log.info("Waiting %.3g s before evaluation.", delay)
            self._clock.sleep(delay)
        return self.evaluator.evaluate(
            self._eval_input_fn,
            name=name,
            checkpoint=self.latest_checkpoint(),
            steps=self._args.eval_steps,
        )

    def evaluate_checkpoint(self, checkpoint_path: str, name: str | None = None) -> dict[str, Any]:
        """Evaluate one given checkpoint now (no delay); fails loudly if it is not complete."""
        return self.evaluator.evaluate(
            self._eval_input_fn,
            name=name,
            checkpoint=complete_checkpoint(checkpoint_path),
            steps=self._args.eval_steps,
        )

    def evaluate_export(self, export_dir: str) -> dict[str, Any]:
        """Evaluate an exported model (this run's or a published one) on `eval_input_fn` for
        `eval_steps` batches, with the estimator's loss and metrics: how the blessing gate
        measures a candidate and its baseline alike."""
        evaluate = getattr(self._estimator, "evaluate_export", None)
        if evaluate is None:
            raise ValueError(
                f"The estimator {type(self._estimator).__name__} cannot evaluate exports "
                "(no `evaluate_export`); use KerasEstimator."
            )
        return evaluate(self._eval_input_fn, export_dir, steps=self._args.eval_steps)

    def export(
        self,
        checkpoint_path: str | None = None,
        eval_result: Mapping[str, Any] | None = None,
        is_the_final_export: bool = True,
    ) -> list[str | None]:
        """Run the export strategies on a checkpoint (default: the latest).

        Without `eval_result`, the checkpoint's recorded evaluation is used (any evaluator's
        results file); a checkpoint never evaluated is evaluated now (name "export"), so
        BestExporter always has a result to compare.
        """
        if checkpoint_path is None:
            checkpoint = self.latest_checkpoint()
            if checkpoint is None:
                raise ValueError(
                    f"Nothing to export: model_dir {self.model_dir!r} has no complete checkpoint."
                )
        else:
            checkpoint = complete_checkpoint(checkpoint_path)
        return self.evaluator.export_with_result(
            checkpoint,
            eval_result,
            self._eval_input_fn,
            steps=self._args.eval_steps,
            is_the_final_export=is_the_final_export,
        )

    def continuous_eval(
        self,
        delay_secs: float | None = None,
        throttle_delay_secs: float | None = None,
        evaluate_checkpoint_only_once: bool = True,
        continuous_eval_predicate_fn: Predicate | None = None,
        name: str = "continuous",
        every_checkpoint: bool = False,
    ) -> dict[str, Any] | None:
        """Evaluate new checkpoints (the latest, or `every_checkpoint` in step order) and export,
        until the final checkpoint is evaluated or the predicate says stop. Returns the last result."""
        evaluation = self._continuous_evaluation(
            self._eval_input_fn,
            name=name,
            throttle_delay_secs=throttle_delay_secs,
            only_once=evaluate_checkpoint_only_once,
            predicate=continuous_eval_predicate_fn,
            export=True,
            every_checkpoint=every_checkpoint,
        )
        return evaluate_continuously(evaluation, self._eval_delay(delay_secs), self._clock)

    def continuous_eval_on_train_data(
        self,
        delay_secs: float | None = None,
        throttle_delay_secs: float | None = None,
        continuous_eval_predicate_fn: Predicate | None = None,
        name: str = "continuous_on_train_data",
    ) -> dict[str, Any] | None:
        """`continuous_eval` on `train_input_fn`, without export."""
        evaluation = self._continuous_evaluation(
            self._train_input_fn,
            name=name,
            throttle_delay_secs=throttle_delay_secs,
            only_once=True,
            predicate=continuous_eval_predicate_fn,
            export=False,
            every_checkpoint=False,
        )
        return evaluate_continuously(evaluation, self._eval_delay(delay_secs), self._clock)

    def _eval_delay(self, delay_secs: float | None) -> float:
        if delay_secs is None:
            return self._args.eval_delay_secs
        return check_optional_seconds("delay_secs", delay_secs) or 0

    def _continuous_evaluation(
        self,
        input_fn: Callable[[], Any],
        *,
        name: str,
        throttle_delay_secs: float | None,
        only_once: bool,
        predicate: Predicate | None,
        export: bool,
        every_checkpoint: bool,
        evaluator_id: str | None = None,
    ) -> ContinuousEvaluation:
        predicate = _check_predicate(predicate) or self._continuous_eval_predicate_fn
        throttle = (
            self._args.continuous_eval_throttle_secs
            if throttle_delay_secs is None
            else check_optional_seconds("throttle_delay_secs", throttle_delay_secs)
        )
        return ContinuousEvaluation(
            self.evaluator,
            input_fn,
            eval_steps=self._args.eval_steps,
            train_steps=self._args.train_steps,
            name=name,
            every_checkpoint=every_checkpoint,
            only_once=only_once,
            predicate=predicate,
            export=export,
            throttle_secs=throttle,
            evaluator_id=evaluator_id,
        )

    def continuous_eval_pass(
        self,
        name: str = "continuous",
        every_checkpoint: bool = False,
        evaluate_checkpoint_only_once: bool = True,
        continuous_eval_predicate_fn: Predicate | None = None,
        first: bool = True,
        evaluator_id: str | None = None,
    ) -> EvaluationPass:
        """One pass of `continuous_eval` (no delay, no throttle): evaluate and export what is new,
        say if evaluation is over. For callers that wait between passes (the deferrable operator);
        `first` asks the predicate with None first; `evaluator_id`: one registration across passes."""
        evaluation = self._continuous_evaluation(
            self._eval_input_fn,
            name=name,
            throttle_delay_secs=None,
            only_once=evaluate_checkpoint_only_once,
            predicate=continuous_eval_predicate_fn,
            export=True,
            every_checkpoint=every_checkpoint,
            evaluator_id=evaluator_id,
        )
        if first and not evaluation.start():
            evaluation.registration.withdraw()
            return EvaluationPass([], evaluation.last_result, None, "the predicate said stop")
        return evaluation.run_pass()

    # -- train and evaluate -------------------------------------------------------------------
    def train_and_evaluate(self) -> tuple[dict[str, Any], list[str | None]]:
        """Train with in-training evaluation every `min_eval_frequency` steps (on new
        checkpoints), then evaluate the final checkpoint and export.

        Returns `(eval_result, export_results)`.
        """
        validator = InTrainingEvaluator(
            self.evaluator,
            self._eval_input_fn,
            self._args.eval_steps,
            self._args.min_eval_frequency,
            self._args.checkpoint_and_export,
        )
        trainer = self.trainer
        trainer.start()
        trainer.train(
            max_steps=self._args.train_steps, listeners=[validator] if validator.active else []
        )
        trainer.finish()
        final = self.latest_checkpoint()
        eval_result = validator.results.get(final.global_step) if final else None
        if eval_result is None:
            eval_result = self.evaluator.evaluate(
                self._eval_input_fn, name=None, checkpoint=final, steps=self._args.eval_steps
            )
        else:
            log.info(
                "Final checkpoint (step %d) was evaluated during training; reusing that result.",
                final.global_step,
            )
        export_results = self.evaluator.export(eval_result, final, is_the_final_export=True)
        return eval_result, export_results

    def local_run(self) -> tuple[dict[str, Any], list[str | None]]:
        """Deprecated: `train_and_evaluate` with `local_eval_frequency` as `min_eval_frequency`."""
        warnings.warn(
            "local_run() is deprecated: use train_and_evaluate().", FutureWarning, stacklevel=2
        )
        saved = self._args
        self._args = dataclasses.replace(saved, min_eval_frequency=saved.local_eval_frequency or 0)
        try:
            return self.train_and_evaluate()
        finally:
            self._args = saved

    def continuous_train_and_eval(
        self, continuous_eval_predicate_fn: Predicate | None = None
    ) -> tuple[dict[str, Any] | None, list[str | None] | None]:
        """Repeat: train `train_steps_per_iteration` steps, evaluate, export; until
        `train_steps`, the end of the input, or the predicate says stop."""
        predicate = _check_predicate(continuous_eval_predicate_fn)
        per_iteration = self._args.train_steps_per_iteration or (
            max(1, self._args.train_steps // 10) if self._args.train_steps else 1000
        )
        return train_and_evaluate_in_iterations(
            self.trainer,
            self.evaluator,
            self._eval_input_fn,
            eval_steps=self._args.eval_steps,
            train_steps=self._args.train_steps,
            per_iteration=per_iteration,
            predicate=predicate,
        )

    def test(self) -> dict[str, Any]:
        """Smoke test: train 1 step, evaluate 1 step (name "one_pass"), export."""
        self.trainer.train(steps=1)
        latest = self.latest_checkpoint()
        eval_result = self.evaluator.evaluate(
            self._eval_input_fn, name="one_pass", checkpoint=latest, steps=1
        )
        self.evaluator.export(eval_result, latest, is_the_final_export=False)
        return eval_result

    # -- servers, hooks, exporters -------------------------------------------------------
    def run_std_server(self) -> None:
        """Start this task's tf.distribute.Server and serve until training is complete.

        Unlike the original, which joined forever, it returns once the chief has written the
        completion marker (a marker older than the server is from an earlier run and ignored).
        """
        serve_until_training_complete(
            getattr(self._estimator, "config", None),
            self.model_dir,
            self._clock,
            self._args.check_interval_secs or 1,
        )

    def extend_train_hooks(self, additional_hooks: Sequence[TrainingHook]) -> None:
        self._train_monitors.extend(as_sequence(additional_hooks, "additional_hooks"))

    def reset_export_strategies(self, new_export_strategies: Any = None) -> list[Exporter]:
        """Replace the export strategies; returns the old ones."""
        old = self._export_strategies
        self._export_strategies = check_export_strategies(new_export_strategies, Exporter)
        return old
