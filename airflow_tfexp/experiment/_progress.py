"""Progress lines for long loops: step, total, metrics, steps/s and ETA."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

log = logging.getLogger("airflow_tfexp.experiment.progress")


def _eta(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ProgressLogger:
    """Logs a progress line every `every` steps; returns the steps/s of the last window."""

    def __init__(self, what: str, total: int | None, every: int) -> None:
        self.what = what
        self.total = total
        self.every = every
        self._window_start_step = 0
        self._window_start_time = time.monotonic()
        self.last_rate: float | None = None

    def start(self, step: int) -> None:
        self._window_start_step = step
        self._window_start_time = time.monotonic()

    def update(self, step: int, logs: Mapping[str, float], force: bool = False) -> float | None:
        if step % self.every and step != self.total and not force:
            return self.last_rate
        now = time.monotonic()
        elapsed = now - self._window_start_time
        steps = step - self._window_start_step
        if steps > 0 and elapsed > 0:
            self.last_rate = steps / elapsed
        self._window_start_step, self._window_start_time = step, now
        parts = [f"{self.what} step {step}" + (f"/{self.total}" if self.total else "")]
        parts += [f"{k} {v:.4g}" for k, v in logs.items()]
        if self.last_rate:
            parts.append(f"{self.last_rate:.1f} steps/s")
            if self.total and step < self.total:
                parts.append(f"ETA {_eta((self.total - step) / self.last_rate)}")
        log.info(", ".join(parts))
        return self.last_rate
