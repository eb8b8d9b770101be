"""One trainer per model dir: the chief holds `model_dir/trainer.lease` while it trains.

Two trainers on one model dir interleave the checkpoints of two different models, and both
report success. The lease names its holder (task, try, host, pid) and is renewed by a
heartbeat thread every quarter of `lease_secs`; every change is a compare-and-swap
(`FileSystem.update_bytes`: a lock file locally, generation preconditions on GCS). A second
trainer fails at once naming the holder, unless the lease is stale (no heartbeat for
`lease_secs`), released, or held by an earlier try of the same task instance (a SIGKILLed
task's retry resumes at once, without waiting for the lease to expire). A holder that finds its
lease taken over stops training at its next step (`LeaseGuard`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_tfexp.experiment.hooks import TrainingHook
from airflow_tfexp.experiment.storage.fs import filesystem, join

log = logging.getLogger(__name__)
LEASE_FILE = "trainer.lease"
DEFAULT_LEASE_SECS = 60.0
_ACTIVE: set[str] = set()  # tokens of the leases this process holds and renews


class TrainerLeaseError(RuntimeError):
    """Another trainer holds the model dir, or took it over from this one."""


@dataclasses.dataclass(frozen=True)
class TrainerIdentity:
    """Who trains: an Airflow task instance (`dag/task/run/map index` and its try), or None
    for a trainer run outside Airflow (then host and pid tell it apart)."""

    task: str | None = None
    try_number: int | None = None
    lease_secs: float = DEFAULT_LEASE_SECS

    @classmethod
    def from_environment(cls) -> TrainerIdentity:
        """For a trainer started outside this process's operator (a container, the command
        line): TFEXP_TRAINER_TASK, TFEXP_TRAINER_TRY and TFEXP_TRAINER_LEASE_SECS."""
        try_number = os.environ.get("TFEXP_TRAINER_TRY")
        lease_secs = os.environ.get("TFEXP_TRAINER_LEASE_SECS")
        try:
            return cls(
                task=os.environ.get("TFEXP_TRAINER_TASK") or None,
                try_number=int(try_number) if try_number else None,
                lease_secs=float(lease_secs) if lease_secs else DEFAULT_LEASE_SECS,
            )
        except ValueError:
            raise ValueError(
                f"Invalid TFEXP_TRAINER_TRY={try_number!r} or TFEXP_TRAINER_LEASE_SECS="
                f"{lease_secs!r}: expected a whole try number and a number of seconds."
            ) from None


_IDENTITY: contextvars.ContextVar[TrainerIdentity | None] = contextvars.ContextVar(
    "tfexp_trainer_identity", default=None
)


@contextlib.contextmanager
def training_as(identity: TrainerIdentity) -> Iterator[None]:
    """Trainers started in this context hold their lease as `identity` (set by the operators)."""
    token = _IDENTITY.set(identity)
    try:
        yield
    finally:
        _IDENTITY.reset(token)


def identity_environment() -> dict[str, str]:
    """The current trainer identity as TFEXP_TRAINER_* variables, for the processes a task
    starts to train (Ray workers): their chief holds the lease as this task's try."""
    identity = _IDENTITY.get() or TrainerIdentity.from_environment()
    environment = {"TFEXP_TRAINER_LEASE_SECS": str(identity.lease_secs)}
    if identity.task:
        environment["TFEXP_TRAINER_TASK"] = identity.task
    if identity.try_number is not None:
        environment["TFEXP_TRAINER_TRY"] = str(identity.try_number)
    return environment


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    try:
        record = json.loads(raw) if raw else None
    except ValueError:
        return None  # a garbage lease protects nothing: it is replaced
    return record if isinstance(record, dict) else None


def _describe(holder: Mapping[str, Any], now: float) -> str:
    task = holder.get("task") or "a trainer outside Airflow"
    try_number = f" (try {holder['try_number']})" if holder.get("try_number") else ""
    age = now - float(holder.get("heartbeat_at") or 0)
    return f"{task}{try_number} on {holder.get('host')} pid {holder.get('pid')}, last heartbeat {age:.0f} s ago"


class TrainerLease:
    """The lease of one trainer on `model_dir`: `acquire()`, then `release()` when done."""

    def __init__(self, model_dir: str, identity: TrainerIdentity | None = None) -> None:
        self.model_dir = model_dir
        self.path = join(model_dir, LEASE_FILE)
        self.identity = identity or _IDENTITY.get() or TrainerIdentity.from_environment()
        if not self.identity.lease_secs > 0:
            raise ValueError(
                f"Invalid value for `[tfexp] trainer_lease_secs`. Received: "
                f"{self.identity.lease_secs!r}. Expected a number of seconds > 0."
            )
        self.token = uuid.uuid4().hex
        self.lost: str | None = None  # why this trainer no longer holds the lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, now: float, acquired_at: float | None = None) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "task": self.identity.task,
                "try_number": self.identity.try_number,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "acquired_at": acquired_at or now,
                "heartbeat_at": now,
                "lease_secs": self.identity.lease_secs,
            },
            sort_keys=True,
        ).encode()

    def _may_take(self, holder: Mapping[str, Any] | None, now: float) -> str | None:
        """Why this trainer may take the lease from `holder` (None: it may not)."""
        if holder is None or holder.get("released"):
            return "free"
        if holder.get("token") == self.token:
            return "ours"
        stale_after = float(holder.get("lease_secs") or self.identity.lease_secs)
        if now - float(holder.get("heartbeat_at") or 0) > stale_after:
            return f"stale: {_describe(holder, now)}"
        mine, theirs = self.identity, holder
        if mine.task and theirs.get("task") == mine.task:
            earlier = (theirs.get("try_number") or 0) < (mine.try_number or 0)
            if earlier:
                return f"held by an earlier try of this task: {_describe(holder, now)}"
        same_process = (
            theirs.get("host") == socket.gethostname() and theirs.get("pid") == os.getpid()
        )
        if same_process and theirs.get("token") not in _ACTIVE:
            # its pid is this process's now: it is dead (a restarted container keeps its host
            # name and often its pid), or it is an earlier trainer here that never released
            return f"its process is gone: {_describe(holder, now)}"
        return None

    def acquire(self) -> None:
        """Take the lease, or raise TrainerLeaseError naming the trainer that holds it."""
        why: list[str | None] = [None]
        refused: list[str] = []

        def take(raw: bytes | None) -> bytes | None:
            now = time.time()
            holder = _parse(raw)
            why[0] = self._may_take(holder, now)
            refused[:] = [] if why[0] else [_describe(holder or {}, now)]
            return self._record(now) if why[0] else None

        try:
            filesystem(self.path).update_bytes(self.path, take)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            raise OSError(
                errno.ENOSPC,
                f"No space left to write the trainer lease {self.path}: training did not start. "
                "Free some space on that disk and run again; it resumes from the last checkpoint.",
            ) from None
        if refused:
            raise TrainerLeaseError(
                f"Another trainer is training in {self.model_dir}: {refused[0]}. Two trainers on "
                "one model dir would interleave the checkpoints of two models. Wait for it to "
                "finish, or, if it is dead, its lease expires after [tfexp] trainer_lease_secs = "
                f"{self.identity.lease_secs:g} s without a heartbeat (a retry of the same task "
                f"takes over at once). Lease: {self.path}"
            )
        if why[0] not in ("free", "ours"):
            log.warning("Took over the trainer lease of %s (%s).", self.model_dir, why[0])
        self._acquired_at = time.time()
        _ACTIVE.add(self.token)
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"tfexp-lease-{self.token[:6]}", daemon=True
        )
        self._thread.start()

    def _update_if_ours(self, record: bytes | None) -> bool:
        """Write `record` (None: renew) if this trainer still holds the lease."""

        def renew(raw: bytes | None) -> bytes | None:
            holder = _parse(raw)
            if not holder or holder.get("token") != self.token:
                now = time.time()
                self.lost = f"taken over by {_describe(holder or {}, now)}"
                return None
            return record or self._record(time.time(), self._acquired_at)

        return filesystem(self.path).update_bytes(self.path, renew)

    def _heartbeat(self) -> None:
        interval = max(0.2, self.identity.lease_secs / 4)
        while not self._stop.wait(interval):
            try:
                if not self._update_if_ours(None):
                    log.error("The trainer lease of %s was %s.", self.model_dir, self.lost)
                    _ACTIVE.discard(self.token)
                    return
            except Exception as err:  # a storage hiccup: try again next beat
                log.warning("Could not renew the trainer lease of %s: %s", self.model_dir, err)

    def check(self) -> None:
        """Raise TrainerLeaseError when another trainer took this one's lease over."""
        if self.lost:
            raise TrainerLeaseError(
                f"Stopped training in {self.model_dir}: its trainer lease was {self.lost}."
            )

    def release(self) -> None:
        """Stop the heartbeat and mark the lease released (if this trainer still holds it)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self._thread = None
        _ACTIVE.discard(self.token)
        released = json.dumps({"released": True, "released_at": time.time()}).encode()
        with contextlib.suppress(Exception):  # an unreleased lease only expires later
            self._update_if_ours(released)


class LeaseGuard(TrainingHook):
    """Stops training (TrainerLeaseError) at the step after its lease was taken over."""

    def __init__(self, lease: TrainerLease) -> None:
        self.lease = lease

    def after_step(self, step: int, logs: Mapping[str, float]) -> bool | None:
        self.lease.check()
        return None
