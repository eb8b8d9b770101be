"""Wall clock and sleep behind one object, so tests can drive delays and throttles instantly."""

from __future__ import annotations

import time


class Clock:
    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
