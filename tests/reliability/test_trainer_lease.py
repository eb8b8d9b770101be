"""One trainer per model dir: a second trainer fails fast naming the first (before, both trained
steps 1-200 into one model dir and reported success); a SIGKILLed trainer's retry (the same task
instance, a later try) takes over at once instead of waiting for the lease to expire."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from airflow_tfexp.experiment.storage.checkpoints import latest_checkpoint
from airflow_tfexp.experiment.storage.fs import filesystem, join
from airflow_tfexp.experiment.training_lease import (
    LEASE_FILE,
    TrainerIdentity,
    TrainerLease,
    TrainerLeaseError,
    _start_time,
    identity_environment,
    training_as,
)
from tests.experiment.processes import cli_args, env, kill_group, wait_until

TASK = "retrain/train/scheduled__2026-12-01/-1"


def lease_of(model_dir: str) -> dict | None:
    raw = filesystem(model_dir).read_bytes(join(model_dir, LEASE_FILE))
    return json.loads(raw) if raw else None


def test_a_second_trainer_is_refused_naming_the_first(model_dir):
    first = TrainerLease(model_dir, TrainerIdentity(task=TASK, try_number=1))
    first.acquire()
    try:
        other = TrainerLease(model_dir, TrainerIdentity(task="other/train/manual__1/-1"))
        with pytest.raises(TrainerLeaseError) as raised:
            other.acquire()
        message = str(raised.value)
        assert TASK in message and "(try 1)" in message and str(os.getpid()) in message
        assert (
            socket.gethostname() in message and "expires after 60 s without a heartbeat" in message
        )
        assert f"delete {join(model_dir, LEASE_FILE)}" in message
        # an earlier try of the same task (a zombie) does not take over from a later one
        with pytest.raises(TrainerLeaseError):
            TrainerLease(model_dir, TrainerIdentity(task=TASK, try_number=0)).acquire()
    finally:
        first.release()
    assert lease_of(model_dir)["released"] is True
    second = TrainerLease(model_dir, TrainerIdentity(task="other/train/manual__1/-1"))
    second.acquire()  # released: free again
    second.release()


def test_a_stale_lease_is_taken_over_and_its_holder_stops(model_dir, caplog):
    holder = TrainerLease(model_dir, TrainerIdentity(task="a/train/r/-1", lease_secs=0.8))
    holder.acquire()
    holder._stop.set()  # a holder that hangs: no more heartbeats
    time.sleep(1.2)
    successor = TrainerLease(model_dir, TrainerIdentity(task="b/train/r/-1", lease_secs=0.8))
    successor.acquire()
    assert "Took over the trainer lease" in caplog.text and "stale" in caplog.text
    holder._update_if_ours(None)  # the hung holder's next heartbeat finds it taken over
    with pytest.raises(TrainerLeaseError, match="taken over by b/train/r/-1"):
        holder.check()
    holder.release()  # does not release the successor's lease
    assert lease_of(model_dir)["task"] == "b/train/r/-1"
    successor.release()


def test_a_garbage_lease_file_protects_nothing(tmp_path):
    model_dir = str(tmp_path)
    filesystem(model_dir).write_bytes(join(model_dir, LEASE_FILE), b"\x00not json")
    lease = TrainerLease(model_dir, TrainerIdentity(task=TASK))
    lease.acquire()
    assert lease_of(model_dir)["task"] == TASK
    lease.release()


def start_trainer(model_dir: str, task: str, try_number: int, log_path, **params):
    environment = dict(
        env(), TFEXP_TRAINER_TASK=task, TFEXP_TRAINER_TRY=str(try_number),
        TFEXP_TRAINER_LEASE_SECS="600",
    )  # fmt: skip
    return subprocess.Popen(
        cli_args(model_dir, "train", {"save_checkpoints_steps": 5, **params}),
        env=environment,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_trainers_and_a_killed_trainers_retry(model_dir, tmp_path):
    first = start_trainer(
        model_dir, TASK, 1, tmp_path / "first.log", train_steps=100_000, step_sleep_secs=0.02
    )
    try:
        wait_until(lambda: latest_checkpoint(model_dir) is not None, 120, what="a checkpoint")
        holder = lease_of(model_dir)
        assert (holder["task"], holder["pid"]) == (TASK, first.pid)
        # a trainer of another task on the same model dir fails fast, naming the first
        started = time.monotonic()
        second = start_trainer(model_dir, "other/train/manual/-1", 1, tmp_path / "second.log")
        assert second.wait(timeout=120) != 0
        log = (tmp_path / "second.log").read_text()
        assert f"Another trainer is training in {model_dir}: {TASK} (try 1)" in log, log[-3000:]
        assert f"pid {first.pid}" in log
        assert first.poll() is None, "the first trainer was disturbed"
        waited = time.monotonic() - started
        # SIGKILL the first: its retry (try 2) takes over at once, not after 600 s
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        killed_at = latest_checkpoint(model_dir).global_step
        target = killed_at + 10
        retry = start_trainer(model_dir, TASK, 2, tmp_path / "retry.log", train_steps=target)
        assert retry.wait(timeout=180) == 0, (tmp_path / "retry.log").read_text()[-3000:]
    finally:
        kill_group(first)
    retry_log = (tmp_path / "retry.log").read_text()
    assert "held by an earlier run of this task" in retry_log
    assert latest_checkpoint(model_dir).global_step == target  # resumed, not restarted
    assert lease_of(model_dir)["released"] is True
    assert waited < 120


def test_the_identity_travels_to_processes_a_task_starts(monkeypatch):
    """Ray workers and containers get the task's identity as TFEXP_TRAINER_* variables."""
    with training_as(TrainerIdentity(task=TASK, try_number=3, lease_secs=5)):
        environment = identity_environment()
    assert environment == {
        "TFEXP_TRAINER_TASK": TASK,
        "TFEXP_TRAINER_TRY": "3",
        "TFEXP_TRAINER_LEASE_SECS": "5",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert TrainerIdentity.from_environment() == TrainerIdentity(TASK, 3, 5.0)
    monkeypatch.setenv("TFEXP_TRAINER_TRY", "third")
    with pytest.raises(ValueError, match="TFEXP_TRAINER_TRY='third'"):
        TrainerIdentity.from_environment()


@pytest.mark.parametrize(
    "planted",
    [
        {"heartbeat_at": "yesterday", "task": "x"},
        {"heartbeat_at": float("nan"), "task": "x"},
        {"heartbeat_at": time.time() + 10 * 365 * 86400, "task": "x"},  # ten years ahead
        {"heartbeat_at": time.time() - 120, "lease_secs": 1e300, "task": "x"},  # never stale?
    ],
    ids=["not a time", "nan", "far future", "endless lease"],
)
def test_a_hostile_lease_cannot_pin_the_model_dir(tmp_path, planted, caplog):
    model_dir = str(tmp_path)
    raw = json.dumps(planted).encode()  # NaN as JSON allows it
    filesystem(model_dir).write_bytes(join(model_dir, LEASE_FILE), raw)
    lease = TrainerLease(model_dir, TrainerIdentity(task=TASK))
    lease.acquire()
    assert lease_of(model_dir)["task"] == TASK
    lease.release()


def test_a_trainer_that_cannot_renew_stops_itself(tmp_path, monkeypatch):
    """Renewals failing for longer than the lease: others may see it stale, so it stops."""
    lease = TrainerLease(str(tmp_path), TrainerIdentity(task=TASK, lease_secs=0.8))
    lease.acquire()

    def unreachable(raw):
        raise ConnectionError("storage unreachable")

    monkeypatch.setattr(lease, "_update_if_ours", unreachable)
    wait_until(lambda: lease.lost is not None, 10, what="the lease given up")
    with pytest.raises(TrainerLeaseError, match="not renewed for"):
        lease.check()
    lease.release()


def test_a_fifo_where_the_lease_goes_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / LEASE_FILE)
    with pytest.raises(ValueError, match="FIFO"):
        TrainerLease(str(tmp_path), TrainerIdentity(task=TASK)).acquire()


def test_a_renewal_that_hangs_counts_as_not_renewed(tmp_path, monkeypatch):
    """A stalled connection: the renewal neither lands nor fails. After 3/4 of the lease the
    trainer counts it lost (others may see it stale soon) and writes no more checkpoints."""
    import threading

    from airflow_tfexp.experiment.training_lease import LeaseSaveGuard

    lease = TrainerLease(str(tmp_path), TrainerIdentity(task=TASK, lease_secs=1.0))
    lease.acquire()
    stuck = threading.Event()
    monkeypatch.setattr(lease, "_update_if_ours", lambda record: stuck.wait(30))
    time.sleep(1.0)
    with pytest.raises(TrainerLeaseError, match="not renewed for"):
        LeaseSaveGuard(lease).before_save(100)
    stuck.set()
    lease.release()


@pytest.mark.parametrize("secs", [float("inf"), float("nan"), 0, 200_000])
def test_a_lease_length_others_would_not_believe_is_refused(tmp_path, secs):
    with pytest.raises(ValueError, match="trainer_lease_secs"):
        TrainerLease(str(tmp_path), TrainerIdentity(task=TASK, lease_secs=secs))


def test_a_trainer_outside_airflow_takes_over_from_a_dead_one_on_this_machine(tmp_path):
    """A container or command line restarted after a SIGKILL, same machine: its pid is gone,
    so the restart need not wait for the lease to expire. A live one is not taken over."""
    model_dir = str(tmp_path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        planted = json.loads(TrainerLease(model_dir)._record(time.time()))
        planted.update(pid=sleeper.pid, process="another", token="theirs")
        planted["started"] = _start_time(sleeper.pid)
        filesystem(model_dir).write_bytes(join(model_dir, LEASE_FILE), json.dumps(planted).encode())
        with pytest.raises(TrainerLeaseError, match=f"pid {sleeper.pid}"):
            TrainerLease(model_dir).acquire()  # alive: refused
    finally:
        sleeper.kill()
        sleeper.wait()
    lease = TrainerLease(model_dir)
    lease.acquire()  # its process is gone
    lease.release()
