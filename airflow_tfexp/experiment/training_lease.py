"""One trainer per model dir: the chief holds `model_dir/trainer.lease` while it trains.

Two trainers on one model dir interleave the checkpoints of two different models, and both
report success. The lease names its holder (task, try, host, pid) and is renewed by a
heartbeat thread every quarter of `lease_secs`; every change is a compare-and-swap
(`FileSystem.update_bytes`: a lock file locally, generation preconditions on GCS). A second
trainer fails at once naming the holder, unless the lease is stale (no heartbeat for
`lease_secs`), released, or held by an earlier try of the same task instance (a SIGKILLed
task's retry resumes at once, without waiting for the lease to expire). A holder that finds its
lease taken over, or that could not renew it for 3/4 of `lease_secs`, fails at its next
checkpoint save and writes no further checkpoint (`LeaseSaveGuard`: a saving listener, not a
per-step hook, so the chief of a multi-worker run steps exactly like its workers). A trainer
outside Airflow whose holder ran on this machine and is gone (its pid exited, or was reused)
takes over at once too.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_tfexp.experiment.hooks import CheckpointSaverListener
from airflow_tfexp.experiment.storage.fs import filesystem, join

log = logging.getLogger(__name__)
LEASE_FILE = "trainer.lease"
DEFAULT_LEASE_SECS = 60.0
MAX_LEASE_SECS = 86400.0  # a holder's longer lease (hand-edited, say) is not believed
_PROCESS = uuid.uuid4().hex  # this process, told apart from another with the same host and pid


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rsplit(")", 1)[-1].split()[19] if stat else None


def _machine() -> str | None:
    """This boot of this machine, in this pid namespace: where a pid names one process."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


def process_gone(holder: Mapping[str, Any]) -> bool:
    """Whether the holder ran in this machine's pid namespace (same boot) and its process no
    longer runs (the pid exited, or now names a process started later). False when that
    cannot be told (another machine or container): then only staleness frees the lease."""
    machine, pid, started = holder.get("machine"), holder.get("pid"), holder.get("started")
    if machine is None or machine != _machine() or not isinstance(pid, int) or not started:
        return False
    return _start_time(pid) != started


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


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    """The holder's record; None for a lease that protects nothing (absent, garbage, or
    without a believable heartbeat time): it is replaced."""
    try:
        record = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("released") is True:
        return record
    return record if _number(record.get("heartbeat_at")) is not None else None


def _lease_secs(holder: Mapping[str, Any], default: float) -> float:
    """The holder's lease length when believable (0 < secs <= a day), else `default`."""
    secs = _number(holder.get("lease_secs"))
    return secs if secs is not None and 0 < secs <= MAX_LEASE_SECS else default


def _describe(holder: Mapping[str, Any], now: float) -> str:
    task = holder.get("task") or "a trainer outside Airflow"
    try_number = f" (try {holder['try_number']})" if holder.get("try_number") else ""
    age = now - (_number(holder.get("heartbeat_at")) or 0)
    return (
        f"{str(task)[:200]}{try_number} on {str(holder.get('host'))[:100]} pid "
        f"{holder.get('pid')}, last heartbeat {age:.0f} s ago"
    )


def active_trainer(model_dir: str) -> str | None:
    """Who trains in `model_dir` now (a lease held, renewed within its length, its process not
    known to be gone), or None when no trainer does."""
    path = join(model_dir, LEASE_FILE)
    holder = _parse(filesystem(path).read_bytes(path))
    if holder is None or holder.get("released"):
        return None
    now = time.time()
    if abs(now - float(holder["heartbeat_at"])) > _lease_secs(holder, DEFAULT_LEASE_SECS):
        return None
    if holder.get("process") != _PROCESS and process_gone(holder):
        return None
    return _describe(holder, now)


class TrainerLease:
    """The lease of one trainer on `model_dir`: `acquire()`, then `release()` when done."""

    def __init__(self, model_dir: str, identity: TrainerIdentity | None = None) -> None:
        self.model_dir = model_dir
        self.path = join(model_dir, LEASE_FILE)
        self.identity = identity or _IDENTITY.get() or TrainerIdentity.from_environment()
        if not 0 < self.identity.lease_secs <= MAX_LEASE_SECS:  # NaN fails too
            raise ValueError(
                f"Invalid value for `[tfexp] trainer_lease_secs` (TFEXP_TRAINER_LEASE_SECS). "
                f"Received: {self.identity.lease_secs!r}. Expected seconds > 0 and at most "
                f"{MAX_LEASE_SECS:g} (other trainers do not believe a longer lease)."
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
                "process": _PROCESS,
                "machine": _machine(),
                "started": _start_time(os.getpid()),
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
        stale_after = _lease_secs(holder, self.identity.lease_secs)
        age = now - float(holder["heartbeat_at"])
        if age > stale_after:
            return f"stale: {_describe(holder, now)}"
        if age < -stale_after:  # a wrong clock or a hand-edited lease must not pin it for good
            return f"its heartbeat is {-age:.0f} s in the future: {_describe(holder, now)}"
        mine, theirs = self.identity, holder
        if mine.task and theirs.get("task") == mine.task:
            # a later try, or the same try restarted (Ray restarting its worker group)
            if (_number(theirs.get("try_number")) or 0) <= (mine.try_number or 0):
                return f"held by an earlier run of this task: {_describe(holder, now)}"
        if theirs.get("process") != _PROCESS and process_gone(theirs):
            return f"its process is gone: {_describe(holder, now)}"
        if theirs.get("process") == _PROCESS and theirs.get("token") not in _ACTIVE:
            return f"held by an earlier trainer of this process, never released: {_describe(holder, now)}"
        return None

    def acquire(self) -> None:
        """Take the lease, or raise TrainerLeaseError naming the trainer that holds it."""
        why: list[str | None] = [None]
        refused: list[Any] = []

        def take(raw: bytes | None) -> bytes | None:
            now = time.time()
            holder = _parse(raw)
            why[0] = self._may_take(holder, now)
            refused[:] = (
                []
                if why[0]
                else [
                    _describe(holder or {}, now),
                    _lease_secs(holder or {}, self.identity.lease_secs),
                ]
            )
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
                "finish; if it is dead, its lease expires after "
                f"{refused[1]:g} s without a heartbeat ([tfexp] trainer_lease_secs, or "
                "TFEXP_TRAINER_LEASE_SECS outside Airflow; a retry of the same task takes over "
                f"at once). If no trainer is running there, delete {self.path}."
            )
        if why[0] not in ("free", "ours"):
            log.warning("Took over the trainer lease of %s (%s).", self.model_dir, why[0])
        self._acquired_at = time.time()
        self._renewed = time.monotonic()  # the last renewal known to have landed
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
        renewed = time.monotonic()
        while not self._stop.wait(interval):
            try:
                started = time.monotonic()
                if not self._update_if_ours(None):
                    log.error("The trainer lease of %s was %s.", self.model_dir, self.lost)
                    _ACTIVE.discard(self.token)
                    return
                renewed = self._renewed = started
            except Exception as err:  # a storage hiccup: try again next beat
                log.warning("Could not renew the trainer lease of %s: %s", self.model_dir, err)
                silent = time.monotonic() - renewed
                if silent > self.identity.lease_secs:
                    # others may now see it stale and take it: stop rather than train beside them
                    self.lost = f"not renewed for {silent:.0f} s (last error: {err})"
                    log.error("The trainer lease of %s was %s.", self.model_dir, self.lost)
                    _ACTIVE.discard(self.token)
                    return

    def check(self) -> None:
        """Raise TrainerLeaseError when another trainer took this one's lease over, or when no
        renewal landed for 3/4 of the lease (a renewal hung on a stalled connection: others may
        see the lease stale soon, and this trainer must not write beside them)."""
        silent = time.monotonic() - getattr(self, "_renewed", time.monotonic())
        if not self.lost and self._thread is not None and silent > 0.75 * self.identity.lease_secs:
            self.lost = f"not renewed for {silent:.0f} s (a renewal is stuck or failing)"
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


class LeaseSaveGuard(CheckpointSaverListener):
    """Refuses to write a checkpoint once the lease is lost (TrainerLeaseError)."""

    def __init__(self, lease: TrainerLease) -> None:
        self.lease = lease

    def before_save(self, step: int) -> None:
        self.lease.check()
