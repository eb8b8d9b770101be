"""Writers at the same moment: spawned processes (no storage client or lock inherited from a
fork) that meet at a barrier before each round of writes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any


def run_at_once(target: Callable[..., None], args: Sequence[tuple], timeout: float = 240) -> None:
    """Run `target(*args[i], barrier)` in one process per tuple; each must exit with 0."""
    context = multiprocessing.get_context("spawn")
    barrier: Any = context.Barrier(len(args))
    workers = [context.Process(target=target, args=(*a, barrier)) for a in args]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=timeout)
    assert [w.exitcode for w in workers] == [0] * len(workers)
