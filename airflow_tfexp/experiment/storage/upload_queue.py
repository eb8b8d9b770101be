"""Uploads off the training thread, one at a time and in the order they were asked for.

Training asks for a checkpoint's upload (shards, index, then the state file) and goes on
stepping while a worker thread does it. Order is what keeps readers safe: a later checkpoint's
state file is never uploaded before an earlier one's files, and nothing queued after a failed
upload runs, so a reader sees the old state or the new one. The first failure is raised in the
training thread by the next `submit` or `wait` (before the next save, and before training
returns), naming what failed and why; once `wait` has raised it, the queue takes new uploads
again (a retried `train` starts afresh).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class UploadError(RuntimeError):
    """A background upload failed; training stops rather than write checkpoints no reader sees."""


class UploadQueue:
    """A single worker thread that runs uploads in order; `wait()` drains it."""

    def __init__(self, name: str) -> None:
        self.name = name  # the model dir, for messages
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._failure: UploadError | None = None
        self._lock = threading.Lock()
        self.upload_secs = 0.0  # time spent uploading, on the worker thread
        self.waited_secs = 0.0  # time the caller spent blocked in `wait` (the training stall)

    def submit(self, what: str, upload: Callable[..., Any], *args: Any) -> None:
        """Queue `upload(*args)`; `what` names it in logs and errors ("checkpoint ckpt-200")."""
        self._raise_failure()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="tfexp-upload")
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._executor.submit(self._run, what, upload, args))

    def _run(self, what: str, upload: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._failure is not None:
            return  # in order: nothing after a failed upload, so no state names a missing file
        started = time.perf_counter()
        try:
            upload(*args)
        except BaseException as exc:
            where = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
            self._failure = UploadError(f"Uploading {what} to {self.name} failed{where}: {exc!r}.")
            self._failure.__cause__ = exc
            log.error("%s", self._failure)
        finally:
            self.upload_secs += time.perf_counter() - started

    def pending(self) -> int:
        """Uploads queued or running now."""
        with self._lock:
            return sum(not f.done() for f in self._pending)

    def wait(self) -> None:
        """Block until every queued upload is done; raise the first failure (UploadError)."""
        with self._lock:
            pending = list(self._pending)
        started = time.perf_counter()
        for future in pending:  # an interrupt here leaves them pending for the next wait
            future.result()
        self.waited_secs += time.perf_counter() - started
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()]
        failure, self._failure = self._failure, None  # raised once: a later run starts afresh
        if failure is not None:
            raise failure

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
