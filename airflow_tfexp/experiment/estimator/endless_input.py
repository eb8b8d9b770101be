"""Warn when an evaluation with `eval_steps=None` reads on and on (an endless `eval_input_fn`,
e.g. one ending in `repeat()`): the Estimator would evaluate forever without a word."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def eval_warn_batches() -> int:
    """After how many batches an evaluation with `eval_steps=None` warns, and again each time
    that many more pass (TFEXP_EVAL_WARN_BATCHES; the operators set it from `[tfexp]`)."""
    raw = os.environ.get("TFEXP_EVAL_WARN_BATCHES", "100000")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"Invalid value for `[tfexp] eval_warn_batches` (TFEXP_EVAL_WARN_BATCHES). "
            f"Received: {raw!r}. Expected a whole number of batches >= 1."
        )
    return value


class EndlessInputWarning:
    """Logs a warning each time an unbounded evaluation passes another `eval_warn_batches()`."""

    def __init__(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self._every = eval_warn_batches()
        self._warned = 0

    def update(self, evaluated: int) -> None:
        if evaluated // self._every <= self._warned:
            return
        self._warned = evaluated // self._every
        log.warning(
            "Evaluation of %s has read %s batches with eval_steps=None and its input is "
            "still producing: an endless eval_input_fn (a repeat())? Set eval_steps, or "
            "[tfexp] eval_warn_batches (TFEXP_EVAL_WARN_BATCHES) to warn later.",
            self._model_dir,
            f"{evaluated:,}",
        )
