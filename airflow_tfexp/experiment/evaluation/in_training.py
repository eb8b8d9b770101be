"""train_and_evaluate's validation: a saving listener that evaluates new checkpoints while
training runs (and exports them too, with `checkpoint_and_export`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from airflow_tfexp.experiment.evaluation.evaluator import CheckpointEvaluator
from airflow_tfexp.experiment.hooks import CheckpointSaverListener, TrainingContext
from airflow_tfexp.experiment.storage.checkpoints import CheckpointInfo

log = logging.getLogger(__name__)


class InTrainingEvaluator(CheckpointSaverListener):
    """Evaluate a new checkpoint when at least `min_eval_frequency` steps passed since the last
    evaluation (every checkpoint, and export too, with `checkpoint_and_export`); `results` maps
    each evaluated step to its result."""

    def __init__(
        self,
        evaluator: CheckpointEvaluator,
        input_fn: Callable[[], Any],
        eval_steps: int | None,
        min_eval_frequency: int,
        checkpoint_and_export: bool,
    ) -> None:
        self._evaluator = evaluator
        self._input_fn = input_fn
        self._eval_steps = eval_steps
        self._every = 1 if checkpoint_and_export else min_eval_frequency
        self._export = checkpoint_and_export
        self.active = bool(self._every)
        self.results: dict[int, dict[str, Any]] = {}
        self._last_step = 0
        self._max_steps: int | None = None

    def begin(self, context: TrainingContext) -> None:
        self._last_step = context.global_step
        self._max_steps = context.max_steps

    def reads_checkpoint(self, step: int) -> bool:
        since = step - self._last_step
        return self.active and since > 0 and since >= self._every

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
        self.results[step] = self._evaluator.evaluate(
            self._input_fn, name=None, checkpoint=checkpoint, steps=self._eval_steps
        )
        self._last_step = step
        final = self._max_steps is not None and step >= self._max_steps
        if self._export and not final:  # the final export is train_and_evaluate's own
            self._evaluator.export(self.results[step], checkpoint, is_the_final_export=False)
        return False
