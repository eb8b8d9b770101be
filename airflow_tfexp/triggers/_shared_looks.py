"""Waits on one model dir in one triggerer share one look per poll instant.

A trigger looks at the instants of a grid, `phase + k * poll_interval`, whose phase is fixed by
what it watches (model dir, evaluator name, connection). Triggers watching the same thing (the
sensors of several DAG runs, the event trigger, a continuous evaluator) so wake at the same
instants, and the first to wake starts the look that the others await. A look is shared only
if it started at or after the instant a trigger wanted to look, so no trigger sees an older
state than it would have alone: the worst-case detection time stays one poll interval. Grids
of 5 s and 10 s with one phase meet every 10 s. Different model dirs get different phases,
which spreads their looks over the interval instead of bunching them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
import weakref
import zlib
from collections.abc import Callable, Iterator

from airflow_tfexp.experiment.evaluation.model_dir_scan import ModelDirScan

LookKey = tuple[str, str | None, str | None]  # model dir, evaluator name, connection id
PHASE_SPAN_SECS = 3600.0  # phases spread over an hour: any interval that divides it stays aligned


def look_key(model_dir: str, name: str | None, gcp_conn_id: str | None) -> LookKey:
    """What a look depends on: triggers with the same key may share it (one connection's
    credentials never serve another's)."""
    return (model_dir.rstrip("/"), name, gcp_conn_id)


@dataclasses.dataclass
class _Watched:
    watchers: int = 0
    started: float = -math.inf  # when the latest look started (the look clock)
    in_flight: asyncio.Future[ModelDirScan] | None = None
    in_flight_base: float = -math.inf  # when the whole scan the look in flight builds on started
    last: ModelDirScan | None = None  # the latest completed look: its version saves a listing
    last_started: float = -math.inf  # when `last` started
    last_base: float = -math.inf  # when the whole scan `last` builds on started

    looks: int = 0  # looks actually made (the rest were shared)


class SharedLooks:
    """The looks of one event loop (one triggerer process): see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._watched: dict[LookKey, _Watched] = {}

    def next_instant(self, key: LookKey, poll_interval: float) -> float:
        """The next instant (look clock) of `key`'s grid for `poll_interval`."""
        phase = zlib.crc32(repr(key).encode()) / 2**32 * PHASE_SPAN_SECS
        now = self.clock()
        return phase + poll_interval * (math.floor((now - phase) / poll_interval) + 1)

    async def sleep_until(self, instant: float) -> None:
        await asyncio.sleep(max(0.0, instant - self.clock()))

    @contextlib.contextmanager
    def watching(self, key: LookKey) -> Iterator[None]:
        """While a trigger waits on `key`: its shared state lives as long as some trigger does."""
        watched = self._watched.setdefault(key, _Watched())
        watched.watchers += 1
        try:
            yield
        finally:
            watched.watchers -= 1
            if watched.watchers == 0 and self._watched.get(key) is watched:
                del self._watched[key]

    def looks_made(self, key: LookKey) -> int:
        """Looks made for `key` so far (for tests and the bench)."""
        watched = self._watched.get(key)
        return watched.looks if watched else 0

    async def look(
        self,
        key: LookKey,
        wanted_at: float,
        scan: Callable[[ModelDirScan | None], ModelDirScan],
        *,
        based_since: float = -math.inf,
    ) -> ModelDirScan:
        """A look at `key` started at or after `wanted_at` and building on a whole scan started
        at or after `based_since`: the one in flight or just made if there is one, else a new
        one, `scan(previous)` in a thread.

        A look while the checkpoint state is unchanged reuses the last one's findings (one
        metadata read), so it is only as fresh as the whole scan it builds on. What the state
        does not cover (the evaluator's results) may have moved on since: a trigger passes
        when it began to wait as `based_since`, and sees nothing older than that."""
        watched = self._watched.setdefault(key, _Watched())
        if (
            watched.in_flight is None
            or watched.started < wanted_at
            or watched.in_flight_base < based_since
        ):
            started = watched.started = self.clock()
            watched.looks += 1
            fresh = watched.last is None or watched.last_base < based_since
            previous = None if fresh else watched.last
            base = watched.in_flight_base = started if fresh else watched.last_base
            watched.in_flight = asyncio.ensure_future(asyncio.to_thread(scan, previous))
            watched.in_flight.add_done_callback(
                lambda done: _keep_result(watched, done, started, base)
            )

        # shielded: a trigger cancelled mid-look does not cancel the others' look
        return await asyncio.shield(watched.in_flight)


def _keep_result(
    watched: _Watched, done: asyncio.Future[ModelDirScan], started: float, base: float
) -> None:
    if done.cancelled():
        return
    # retrieving the exception also marks a failure as seen; an older look ending after a
    # newer one does not replace it
    if done.exception() is None and started >= watched.last_started:
        watched.last, watched.last_started, watched.last_base = done.result(), started, base


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedLooks] = (
    weakref.WeakKeyDictionary()
)


def shared_looks() -> SharedLooks:
    """The running event loop's `SharedLooks` (the triggerer runs every trigger in one loop)."""
    loop = asyncio.get_running_loop()
    looks = _BY_LOOP.get(loop)
    if looks is None:
        looks = _BY_LOOP[loop] = SharedLooks()
    return looks
