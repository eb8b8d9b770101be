"""CheckpointEvaluator: evaluate one checkpoint and record it, run the export strategies on it.

The one place where an evaluation is made and appended to `eval_<name>/results.jsonl`, and where
exports are run: `Experiment`, continuous evaluation and train_and_evaluate's in-training
validation all go through it, so none of them reaches into another's internals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_tfexp.experiment._clock import Clock
from airflow_tfexp.experiment.evaluation.results import find_result, record_result
from airflow_tfexp.experiment.storage.checkpoints import (
    CheckpointInfo,
    list_checkpoints,
    scan_checkpoints,
)
from airflow_tfexp.experiment.storage.fs import join

log = logging.getLogger(__name__)


class CheckpointEvaluator:
    """Evaluate and export on behalf of one experiment.

    :param estimator: anything with `evaluate(input_fn, steps, hooks, checkpoint_path, name)`
        (and `export_saved_model` for the exporters) and a `model_dir`.
    :param eval_metrics: extra metrics passed to `estimator.evaluate(metrics=...)`, or None.
    :param eval_hooks: hooks run by every evaluation.
    :param export_strategies: the exporters run by `export`.
    :param clock: measures how long an evaluation took (recorded with its result).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        eval_metrics: Mapping[str, Any] | None = None,
        eval_hooks: Sequence[Any] = (),
        export_strategies: Sequence[Any] = (),
        clock: Clock | None = None,
    ) -> None:
        self.estimator = estimator
        self.eval_metrics = eval_metrics
        self.eval_hooks = list(eval_hooks)
        self.export_strategies = list(export_strategies)
        self.clock = clock or Clock()

    @property
    def model_dir(self) -> str:
        return str(self.estimator.model_dir)

    def checkpoints(self) -> list[CheckpointInfo]:
        """The complete checkpoints in the model dir, in step order."""
        return list_checkpoints(self.model_dir)

    def checkpoints_and_damage(self) -> tuple[list[CheckpointInfo], str | None]:
        """`checkpoints()`, and why the newest the state names is not among them (or None)."""
        return scan_checkpoints(self.model_dir)

    def evaluate(
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
        started = self.clock.time()
        kwargs: dict[str, Any] = {}
        if self.eval_metrics is not None:
            kwargs["metrics"] = self.eval_metrics
        result = dict(
            self.estimator.evaluate(
                input_fn=input_fn,
                steps=steps,
                hooks=list(self.eval_hooks),
                checkpoint_path=checkpoint.checkpoint_path,
                name=name,
                **kwargs,
            )
        )
        result.setdefault("global_step", checkpoint.global_step)
        record_result(
            self.model_dir, name, result, checkpoint.checkpoint_path, self.clock.time() - started
        )
        return result

    def export(
        self,
        eval_result: Mapping[str, Any] | None,
        checkpoint: CheckpointInfo | None,
        is_the_final_export: bool,
    ) -> list[str | None]:
        """Run every export strategy; return each one's export dir (None: it did not export)."""
        return [
            strategy.export(
                self.estimator,
                join(self.model_dir, "export", strategy.name),
                checkpoint.checkpoint_path if checkpoint else None,
                eval_result,
                is_the_final_export,
            )
            for strategy in self.export_strategies
        ]

    def export_with_result(
        self,
        checkpoint: CheckpointInfo,
        eval_result: Mapping[str, Any] | None,
        input_fn: Callable[[], Any],
        *,
        steps: int | None,
        is_the_final_export: bool,
    ) -> list[str | None]:
        """Export a checkpoint with its evaluation: `eval_result`, else the one recorded by any
        evaluator, else one made now (name "export"), so BestExporter always has a result."""
        if eval_result is None:
            eval_result = find_result(self.model_dir, checkpoint.global_step)
        if eval_result is None:
            log.info(
                "Checkpoint %s has no recorded evaluation; evaluating it for export.",
                checkpoint.checkpoint_path,
            )
            eval_result = self.evaluate(input_fn, name="export", checkpoint=checkpoint, steps=steps)
        return self.export(eval_result, checkpoint, is_the_final_export)
