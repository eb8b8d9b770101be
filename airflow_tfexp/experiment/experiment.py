"""Experiment: tf.contrib.learn's train / evaluate / continuous_eval / export loops on TF 2.

Faithful to the original contract (names, arguments, defaults, delays, throttling, predicate,
only-once evaluation) and better where its users suffered: every checkpoint can be evaluated, the
evaluator's memory survives restarts (`eval_<name>/results.jsonl`), training writes a completion
marker so evaluators and parameter servers stop, and every skip or wait is logged with its reason.
The estimator is duck-typed: anything with `train`, `evaluate`, `model_dir` (and
`export_saved_model` when exporting) works; `KerasEstimator` is the built-in one.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_tfexp.experiment import coordination
from airflow_tfexp.experiment._clock import Clock
from airflow_tfexp.experiment._validation import (
    check_int,
    check_optional_callable,
    check_optional_int,
    check_optional_seconds,
)
from airflow_tfexp.experiment.checkpoints import (
    CheckpointInfo,
    checkpoint_step,
    is_complete,
    list_checkpoints,
)
from airflow_tfexp.experiment.continuous import ContinuousEvaluation, EvaluationPass
from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.exporters import Exporter
from airflow_tfexp.experiment.fs import join
from airflow_tfexp.experiment.hooks import (
    CheckpointSaverListener,
    HookList,
    ListenerList,
    TrainingContext,
    TrainingHook,
)
from airflow_tfexp.experiment.results import find_result, record_result

log = logging.getLogger(__name__)
Predicate = Callable[[Mapping[str, Any] | None], bool]


def _as_exporters(export_strategies: Any) -> list[Exporter]:
    if export_strategies is None:
        return []
    strategies = (
        [export_strategies] if isinstance(export_strategies, Exporter) else export_strategies
    )
    if not isinstance(strategies, Sequence) or isinstance(strategies, str):
        raise ValueError(
            f"Invalid value for `export_strategies`. Received: {export_strategies!r}. Expected an "
            "Exporter, a list of Exporters, or None."
        )
    for strategy in strategies:
        if not isinstance(strategy, Exporter):
            raise ValueError(
                f"Invalid value in `export_strategies`. Received: {strategy!r}. Expected instances of "
                "LatestExporter, BestExporter, FinalExporter or another Exporter subclass."
            )
    names = [s.name for s in strategies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"`export_strategies` must have distinct names; repeated: {duplicates}.")
    return list(strategies)


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
        for method in ("train", "evaluate"):
            if not callable(getattr(estimator, method, None)):
                raise ValueError(
                    f"`estimator` must implement train() and evaluate(). Received: {estimator!r}, "
                    f"which has no callable {method}()."
                )
        if not isinstance(getattr(estimator, "model_dir", None), str | os.PathLike):
            raise ValueError(f"`estimator` must have a `model_dir`. Received: {estimator!r}.")
        for argument, fn in (("train_input_fn", train_input_fn), ("eval_input_fn", eval_input_fn)):
            if not callable(fn):
                raise ValueError(
                    f"Invalid value for `{argument}`. Received: {fn!r}. Expected a callable."
                )
        if (
            eval_metrics is not None
            and "metrics" not in inspect.signature(estimator.evaluate).parameters
        ):
            raise ValueError(
                f"`eval_metrics` is not supported by {type(estimator).__name__}.evaluate(); "
                "compile the metrics into the model instead (model.compile(metrics=[...]))."
            )
        if local_eval_frequency is not None:
            warnings.warn(
                "`local_eval_frequency` is deprecated: use `min_eval_frequency` and "
                "train_and_evaluate().",
                FutureWarning,
                stacklevel=2,
            )
        if train_steps_per_iteration is not None and (
            not isinstance(train_steps_per_iteration, int)
            or isinstance(train_steps_per_iteration, bool)
        ):
            raise ValueError(
                "Invalid value for `train_steps_per_iteration`. Received: "
                f"{train_steps_per_iteration!r}. Expected an int."
            )
        if not isinstance(delay_workers_by_global_step, bool):
            raise ValueError(
                "Invalid value for `delay_workers_by_global_step`. Received: "
                f"{delay_workers_by_global_step!r}. Expected a bool."
            )

        self._estimator = estimator
        self._train_input_fn = train_input_fn
        self._eval_input_fn = eval_input_fn
        self._eval_metrics = eval_metrics
        self._train_steps = check_optional_int("train_steps", train_steps, minimum=0)
        self._eval_steps = check_optional_int("eval_steps", eval_steps, minimum=1)
        self._train_monitors = HookList(train_monitors, "train_monitors").hooks
        self._eval_hooks = HookList(eval_hooks, "eval_hooks").hooks
        self._local_eval_frequency = check_optional_int(
            "local_eval_frequency", local_eval_frequency, minimum=0
        )
        self._eval_delay_secs = check_optional_seconds("eval_delay_secs", eval_delay_secs) or 0
        self._continuous_eval_throttle_secs = (
            check_optional_seconds("continuous_eval_throttle_secs", continuous_eval_throttle_secs)
            or 0
        )
        self._min_eval_frequency = (
            1 if min_eval_frequency is None else check_int("min_eval_frequency", min_eval_frequency)
        )
        self._delay_workers_by_global_step = delay_workers_by_global_step
        self._export_strategies = _as_exporters(export_strategies)
        self._train_steps_per_iteration = check_optional_int(
            "train_steps_per_iteration", train_steps_per_iteration, minimum=1
        )
        self._checkpoint_and_export = bool(checkpoint_and_export)
        self._saving_listeners = ListenerList(saving_listeners, "saving_listeners").listeners
        self._check_interval_secs = (
            check_optional_seconds("check_interval_secs", check_interval_secs) or 0
        )
        self._continuous_eval_predicate_fn = _check_predicate(continuous_eval_predicate_fn)
        self._clock = Clock()

    # -- read-only view ----------------------------------------------------------------------
    estimator = property(lambda self: self._estimator)
    eval_metrics = property(lambda self: self._eval_metrics)
    train_steps = property(lambda self: self._train_steps)
    eval_steps = property(lambda self: self._eval_steps)
    min_eval_frequency = property(lambda self: self._min_eval_frequency)
    export_strategies = property(lambda self: list(self._export_strategies))
    continuous_eval_throttle_secs = property(lambda self: self._continuous_eval_throttle_secs)

    @property
    def model_dir(self) -> str:
        return os.fspath(self._estimator.model_dir)

    def _config_value(self, name: str, default: Any) -> Any:
        return getattr(getattr(self._estimator, "config", None), name, default)

    @property
    def _is_chief(self) -> bool:
        return bool(self._config_value("is_chief", True))

    # -- small helpers ------------------------------------------------------------------------
    def _wait(self, seconds: float | None, why: str) -> None:
        if seconds:
            log.info("Waiting %.3g s before %s.", seconds, why)
            self._clock.sleep(seconds)

    def checkpoints(self) -> list[CheckpointInfo]:
        """The complete checkpoints in the model dir, in step order."""
        return list_checkpoints(self.model_dir)

    def latest_checkpoint(self) -> CheckpointInfo | None:
        """The newest complete checkpoint, or None."""
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None

    def _latest_step(self) -> int:
        latest = self.latest_checkpoint()
        return latest.global_step if latest else 0

    def _call_train(
        self,
        *,
        steps: int | None = None,
        max_steps: int | None = None,
        listeners: Sequence[CheckpointSaverListener] = (),
    ) -> None:
        self._estimator.train(
            input_fn=self._train_input_fn,
            hooks=list(self._train_monitors),
            steps=steps,
            max_steps=max_steps,
            saving_listeners=[*self._saving_listeners, *listeners],
        )

    def _call_evaluate(
        self,
        input_fn: Callable[[], Any],
        *,
        name: str | None,
        checkpoint: CheckpointInfo | None,
        steps: int | None,
    ) -> dict[str, Any]:
        """Evaluate one checkpoint and append the result to `eval_<name>/results.jsonl`."""
        if checkpoint is None:
            raise ValueError(
                f"Could not find a trained model in model_dir {self.model_dir!r}: it has no complete "
                "checkpoint yet."
            )
        started = self._clock.time()
        kwargs: dict[str, Any] = {}
        if self._eval_metrics is not None:
            kwargs["metrics"] = self._eval_metrics
        result = dict(
            self._estimator.evaluate(
                input_fn=input_fn,
                steps=steps,
                hooks=list(self._eval_hooks),
                checkpoint_path=checkpoint.checkpoint_path,
                name=name,
                **kwargs,
            )
        )
        result.setdefault("global_step", checkpoint.global_step)
        record_result(
            self.model_dir, name, result, checkpoint.checkpoint_path, self._clock.time() - started
        )
        return result

    def _maybe_export(
        self,
        eval_result: Mapping[str, Any] | None,
        checkpoint: CheckpointInfo | None,
        is_the_final_export: bool,
    ) -> list[str | None]:
        """Run every export strategy; return each one's export dir (None: it did not export)."""
        results = []
        for strategy in self._export_strategies:
            export_path = join(self.model_dir, "export", strategy.name)
            results.append(
                strategy.export(
                    self._estimator,
                    export_path,
                    checkpoint.checkpoint_path if checkpoint else None,
                    eval_result,
                    is_the_final_export,
                )
            )
        return results

    def _finish_training(self) -> None:
        """Write the completion marker (chief only) so evaluators and servers can stop."""
        if not self._is_chief:
            return
        step = self._latest_step()
        if self._train_steps is not None and step >= self._train_steps:
            reason = f"train_steps={self._train_steps} reached"
        elif self._train_steps is None:
            reason = "the training input ran out or a hook stopped training (train_steps=None)"
        else:
            reason = (
                f"stopped before train_steps={self._train_steps}: the input ran out or a hook "
                "stopped training"
            )
        coordination.write_completion_marker(self.model_dir, step, reason)
        log.info("Training complete at global step %d (%s).", step, reason)

    def _start_training(self) -> None:
        if self._is_chief:
            coordination.clear_completion_marker(self.model_dir)

    # -- train ----------------------------------------------------------------------------------
    def train(self, delay_secs: float | None = None) -> Any:
        """Train to `train_steps` after a delay; returns the estimator.

        Without `delay_secs`, worker k waits `min(60, 5*k)` s, or with
        `delay_workers_by_global_step` until the global step reaches `int(8000*log(k+1))`.
        """
        check_optional_seconds("delay_secs", delay_secs)
        task_id = int(self._config_value("task_id", 0) or 0)
        if delay_secs is None:
            if self._delay_workers_by_global_step:
                self._wait_for_global_step(int(8000 * math.log(task_id + 1)))
                delay_secs = 0
            else:
                delay_secs = min(60, task_id * 5)
        self._wait(delay_secs, f"training (task {task_id})")
        self._start_training()
        self._call_train(max_steps=self._train_steps)
        self._finish_training()
        return self._estimator

    def _wait_for_global_step(self, target: int) -> None:
        while True:
            step = self._latest_step()
            if step >= target:
                return
            log.info(
                "Waiting for global step %d before training (delay_workers_by_global_step); now %d.",
                target,
                step,
            )
            self._clock.sleep(self._check_interval_secs)

    # -- evaluate ---------------------------------------------------------------------------
    def evaluate(self, delay_secs: float | None = None, name: str | None = None) -> dict[str, Any]:
        """Wait `delay_secs` (default `eval_delay_secs`), then evaluate the latest checkpoint once."""
        delay = (
            self._eval_delay_secs
            if delay_secs is None
            else check_optional_seconds("delay_secs", delay_secs)
        )
        self._wait(delay, "evaluation")
        return self._call_evaluate(
            self._eval_input_fn,
            name=name,
            checkpoint=self.latest_checkpoint(),
            steps=self._eval_steps,
        )

    def evaluate_checkpoint(self, checkpoint_path: str, name: str | None = None) -> dict[str, Any]:
        """Evaluate one given checkpoint now (no delay); fails loudly if it is not complete."""
        if not is_complete(checkpoint_path):
            raise CheckpointError(f"Checkpoint {checkpoint_path} is missing or incomplete.")
        step = checkpoint_step(checkpoint_path)
        info = CheckpointInfo(step if step is not None else -1, checkpoint_path)
        return self._call_evaluate(
            self._eval_input_fn, name=name, checkpoint=info, steps=self._eval_steps
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
        return evaluate(self._eval_input_fn, export_dir, steps=self._eval_steps)

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
            if not is_complete(checkpoint_path):
                raise CheckpointError(f"Checkpoint {checkpoint_path} is missing or incomplete.")
            step = checkpoint_step(checkpoint_path)
            checkpoint = CheckpointInfo(step if step is not None else -1, checkpoint_path)
        if eval_result is None:
            eval_result = find_result(self.model_dir, checkpoint.global_step)
        if eval_result is None:
            log.info(
                "Checkpoint %s has no recorded evaluation; evaluating it for export.",
                checkpoint.checkpoint_path,
            )
            eval_result = self._call_evaluate(
                self._eval_input_fn, name="export", checkpoint=checkpoint, steps=self._eval_steps
            )
        return self._maybe_export(eval_result, checkpoint, is_the_final_export)

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
        return self._continuous_eval(
            self._eval_input_fn,
            name=name,
            delay_secs=delay_secs,
            throttle_delay_secs=throttle_delay_secs,
            only_once=evaluate_checkpoint_only_once,
            predicate=continuous_eval_predicate_fn,
            export=True,
            every_checkpoint=every_checkpoint,
        )

    def continuous_eval_on_train_data(
        self,
        delay_secs: float | None = None,
        throttle_delay_secs: float | None = None,
        continuous_eval_predicate_fn: Predicate | None = None,
        name: str = "continuous_on_train_data",
    ) -> dict[str, Any] | None:
        """`continuous_eval` on `train_input_fn`, without export."""
        return self._continuous_eval(
            self._train_input_fn,
            name=name,
            delay_secs=delay_secs,
            throttle_delay_secs=throttle_delay_secs,
            only_once=True,
            predicate=continuous_eval_predicate_fn,
            export=False,
            every_checkpoint=False,
        )

    def _continuous_eval(
        self,
        input_fn,
        *,
        name,
        delay_secs,
        throttle_delay_secs,
        only_once,
        predicate,
        export,
        every_checkpoint,
    ):
        delay = (
            self._eval_delay_secs
            if delay_secs is None
            else check_optional_seconds("delay_secs", delay_secs)
        )
        evaluation = self._continuous_evaluation(
            input_fn, name, throttle_delay_secs, only_once, predicate, export, every_checkpoint
        )
        self._wait(delay, f"continuous evaluation {name!r}")
        if not evaluation.start():
            return None
        try:
            while True:
                started = self._clock.time()
                outcome = evaluation.run_pass()
                if outcome.finished:
                    return outcome.last_result
                remaining = evaluation.throttle_secs - (self._clock.time() - started)
                if remaining > 0:
                    log.info(
                        "Continuous evaluation %r: throttled for %.3g s "
                        "(continuous_eval_throttle_secs=%s).",
                        name,
                        remaining,
                        evaluation.throttle_secs,
                    )
                    self._clock.sleep(remaining)
        finally:
            evaluation.registration.withdraw()

    def _continuous_evaluation(
        self, input_fn, name, throttle_delay_secs, only_once, predicate, export, every_checkpoint
    ) -> ContinuousEvaluation:
        predicate = _check_predicate(predicate) or self._continuous_eval_predicate_fn
        throttle = (
            self._continuous_eval_throttle_secs
            if throttle_delay_secs is None
            else check_optional_seconds("throttle_delay_secs", throttle_delay_secs)
        )
        evaluation = ContinuousEvaluation(
            self,
            input_fn,
            name=name,
            every_checkpoint=every_checkpoint,
            only_once=only_once,
            predicate=predicate,
            export=export,
            throttle_secs=throttle,
        )
        return evaluation

    def continuous_eval_pass(
        self,
        name: str = "continuous",
        every_checkpoint: bool = False,
        evaluate_checkpoint_only_once: bool = True,
        continuous_eval_predicate_fn: Predicate | None = None,
        first: bool = True,
    ) -> EvaluationPass:
        """One pass of `continuous_eval` (no delay, no throttle): evaluate and export what is new,
        and say whether evaluation is over. For callers that wait between passes themselves, like
        the deferrable Airflow operator; `first` asks the predicate with None first."""
        evaluation = self._continuous_evaluation(
            self._eval_input_fn,
            name,
            None,
            evaluate_checkpoint_only_once,
            continuous_eval_predicate_fn,
            True,
            every_checkpoint,
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
        validator = _InTrainingEvaluator(
            self, self._min_eval_frequency, self._checkpoint_and_export
        )
        self._start_training()
        self._call_train(
            max_steps=self._train_steps, listeners=[validator] if validator.active else []
        )
        self._finish_training()
        final = self.latest_checkpoint()
        eval_result = validator.results.get(final.global_step) if final else None
        if eval_result is None:
            eval_result = self._call_evaluate(
                self._eval_input_fn, name=None, checkpoint=final, steps=self._eval_steps
            )
        else:
            log.info(
                "Final checkpoint (step %d) was evaluated during training; reusing that result.",
                final.global_step,
            )
        export_results = self._maybe_export(eval_result, final, is_the_final_export=True)
        return eval_result, export_results

    def local_run(self) -> tuple[dict[str, Any], list[str | None]]:
        """Deprecated: `train_and_evaluate` with `local_eval_frequency` as `min_eval_frequency`."""
        warnings.warn(
            "local_run() is deprecated: use train_and_evaluate().", FutureWarning, stacklevel=2
        )
        saved = self._min_eval_frequency
        self._min_eval_frequency = self._local_eval_frequency or 0
        try:
            return self.train_and_evaluate()
        finally:
            self._min_eval_frequency = saved

    def continuous_train_and_eval(
        self, continuous_eval_predicate_fn: Predicate | None = None
    ) -> tuple[dict[str, Any] | None, list[str | None] | None]:
        """Repeat: train `train_steps_per_iteration` steps, evaluate, export; until
        `train_steps`, the end of the input, or the predicate says stop."""
        predicate = _check_predicate(continuous_eval_predicate_fn)
        per_iteration = self._train_steps_per_iteration or (
            max(1, self._train_steps // 10) if self._train_steps else 1000
        )
        eval_result: dict[str, Any] | None = None
        export_results: list[str | None] | None = None
        self._start_training()
        while predicate is None or predicate(eval_result):
            step = self._latest_step()
            if self._train_steps is not None and step >= self._train_steps:
                log.info(
                    "continuous_train_and_eval: global step %d reached train_steps=%d.",
                    step,
                    self._train_steps,
                )
                break
            target = step + per_iteration
            if self._train_steps is not None:
                target = min(target, self._train_steps)
            self._call_train(max_steps=target)
            latest = self.latest_checkpoint()
            eval_result = self._call_evaluate(
                self._eval_input_fn, name=None, checkpoint=latest, steps=self._eval_steps
            )
            ran_out = latest.global_step < target
            final = ran_out or (
                self._train_steps is not None and latest.global_step >= self._train_steps
            )
            export_results = self._maybe_export(eval_result, latest, is_the_final_export=final)
            if ran_out:
                log.info(
                    "continuous_train_and_eval: the training input ran out at step %d.",
                    latest.global_step,
                )
                break
        else:
            log.info("continuous_train_and_eval: the predicate said stop.")
        self._finish_training()
        return eval_result, export_results

    def test(self) -> dict[str, Any]:
        """Smoke test: train 1 step, evaluate 1 step (name "one_pass"), export."""
        self._call_train(steps=1)
        latest = self.latest_checkpoint()
        eval_result = self._call_evaluate(
            self._eval_input_fn, name="one_pass", checkpoint=latest, steps=1
        )
        self._maybe_export(eval_result, latest, is_the_final_export=False)
        return eval_result

    # -- servers, hooks, exporters -------------------------------------------------------
    def run_std_server(self) -> None:
        """Start this task's tf.distribute.Server and serve until training is complete.

        Unlike the original, which joined forever, it returns once the chief has written the
        completion marker (a marker older than the server is from an earlier run and ignored).
        """
        cluster = self._config_value("cluster_spec", None)
        task_type = self._config_value("task_type", None)
        task_id = self._config_value("task_id", None)
        if not cluster or task_type is None or task_id is None or task_type not in cluster:
            raise ValueError(
                "Could not start a server: the estimator's config needs `cluster_spec`, `task_type` "
                f"and `task_id` (set TF_CONFIG). Received: cluster_spec={cluster!r}, "
                f"task_type={task_type!r}, task_id={task_id!r}."
            )
        import tensorflow as tf  # only servers need it; the rest of this module stays light

        started = self._clock.time()
        server = tf.distribute.Server(
            tf.train.ClusterSpec(cluster),
            job_name=task_type,
            task_index=task_id,
            protocol="grpc",
            start=True,
        )
        log.info(
            "Started %s:%d std server at %s; serving until training completes.",
            task_type,
            task_id,
            server.target,
        )
        while True:
            marker = coordination.read_completion_marker(self.model_dir)
            if marker is not None and marker["wall_time"] >= started:
                log.info(
                    "Training completed at step %d; %s:%d server exits.",
                    marker["global_step"],
                    task_type,
                    task_id,
                )
                return
            self._clock.sleep(self._check_interval_secs or 1)

    def extend_train_hooks(self, additional_hooks: Sequence[TrainingHook]) -> None:
        self._train_monitors.extend(HookList(additional_hooks, "additional_hooks").hooks)

    def reset_export_strategies(self, new_export_strategies: Any = None) -> list[Exporter]:
        """Replace the export strategies; returns the old ones."""
        old = self._export_strategies
        self._export_strategies = _as_exporters(new_export_strategies)
        return old


class _InTrainingEvaluator(CheckpointSaverListener):
    """train_and_evaluate's validation: evaluate a new checkpoint when at least
    `min_eval_frequency` steps passed since the last evaluation (every checkpoint, and export
    too, with `checkpoint_and_export`)."""

    def __init__(
        self, experiment: Experiment, min_eval_frequency: int, checkpoint_and_export: bool
    ) -> None:
        self._experiment = experiment
        self._every = 1 if checkpoint_and_export else min_eval_frequency
        self._export = checkpoint_and_export
        self.active = bool(self._every)
        self.results: dict[int, dict[str, Any]] = {}
        self._last_step = 0
        self._max_steps: int | None = None

    def begin(self, context: TrainingContext) -> None:
        self._last_step = context.global_step
        self._max_steps = context.max_steps

    def after_save(self, step: int, checkpoint_path: str) -> bool:
        since = step - self._last_step
        if since <= 0:
            return False
        if since < self._every:
            log.info(
                "Skipping evaluation at step %d: %d steps since the last evaluation at step %d "
                "(min_eval_frequency=%d).",
                step,
                since,
                self._last_step,
                self._every,
            )
            return False
        checkpoint = CheckpointInfo(step, checkpoint_path)
        experiment = self._experiment
        self.results[step] = experiment._call_evaluate(
            experiment._eval_input_fn,
            name=None,
            checkpoint=checkpoint,
            steps=experiment._eval_steps,
        )
        self._last_step = step
        final = self._max_steps is not None and step >= self._max_steps
        if self._export and not final:  # the final export is train_and_evaluate's own
            experiment._maybe_export(self.results[step], checkpoint, is_the_final_export=False)
        return False
