"""Tasks under `airflow dags test` stop within 10 s of SIGTERM: Airflow 3's task runner only calls
`on_kill` and lets the task run on, so a training task (and a deferred sensor whose trigger
runs inline) ignored SIGTERM for as long as it lasted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.experiment.processes import wait_until


def dags_test(dag_id: str, conf: dict, log_path) -> subprocess.Popen:
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    return subprocess.Popen(
        [airflow, "dags", "test", dag_id, "--conf", json.dumps(conf)],
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
    )


def wait_while_running(process: subprocess.Popen, log_path, ready, what: str) -> None:
    """Wait until `ready()`; the run must still be going then."""
    wait_until(lambda: ready() or process.poll() is not None, 300, what=what)
    assert process.poll() is None, open(log_path).read()


def stop_within_10_s(process: subprocess.Popen, log_path, task_id: str) -> str:
    """SIGTERM: the task logs that it stopped within 10 s; the process exits within 60 s (its
    interpreter's teardown, TensorFlow's included, takes seconds more on a busy machine)."""
    stopped = f"{task_id}: received SIGTERM and stopped"
    process.send_signal(signal.SIGTERM)
    try:
        wait_until(lambda: stopped in open(log_path).read(), 10, what="the task's stop")
        process.wait(timeout=60)
    except (AssertionError, TimeoutError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
        pytest.fail(f"`airflow dags test` did not stop after SIGTERM:\n{open(log_path).read()}")
    return open(log_path).read()


@pytest.mark.slow
def test_training_under_dags_test_stops_within_10_s_of_sigterm(airflow_db, tmp_path):
    model_dir, step_log, log = tmp_path / "model", tmp_path / "steps.log", tmp_path / "dags.log"
    conf = {
        "model_dir": str(model_dir),
        "train_steps": 10**6,
        "step_sleep_secs": 0.05,
        "step_log": str(step_log),
    }
    process = dags_test("tfexp_test_long_training", conf, log)
    lines = lambda: len(open(step_log).readlines()) if step_log.exists() else 0  # noqa: E731
    wait_while_running(process, log, lambda: lines() >= 30, "training")
    stop_within_10_s(process, log, "train")
    lease = json.loads((model_dir / "trainer.lease").read_text())
    assert lease.get("released") is True  # the task's cleanup ran: a rerun may train at once


@pytest.mark.slow
def test_a_deferred_sensor_waiting_inline_stops_within_10_s_of_sigterm(airflow_db, tmp_path):
    model_dir, pid_file, log = tmp_path / "model", tmp_path / "trainer.pid", tmp_path / "dags.log"
    conf = {
        "model_dir": str(model_dir),
        "train_steps": 10**6,
        "step_sleep_secs": 0.05,
        "pid_file": str(pid_file),
    }
    process = dags_test("tfexp_test_sensor_waits_long", conf, log)
    try:
        inline = lambda: "the trigger runs inline" in open(log).read()  # noqa: E731
        wait_while_running(process, log, inline, "the sensor's deferral")
        stop_within_10_s(process, log, "wait")
    finally:
        if pid_file.exists():  # the background trainer runs in its own session
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_a_rescheduling_sensor_under_dags_test_stops_within_10_s_of_sigterm(airflow_db, tmp_path):
    """Between two pokes dag.test() waits in its own loop, where Airflow's handler only calls
    `on_kill`: the provider's handler stays installed under dag.test()."""
    model_dir, log = tmp_path / "model", tmp_path / "dags.log"
    model_dir.mkdir()
    process = dags_test("tfexp_test_sensor_rescheduling", {"model_dir": str(model_dir)}, log)
    # between pokes: the poke's task run is over (SIGTERM during the run itself meets Airflow's
    # handler, the case of the other tests here), dag.test() waits for the reschedule date
    poked = lambda: "[DAG TEST] end task task_id=wait" in open(log).read()  # noqa: E731
    wait_while_running(process, log, poked, "the first poke")

    stop_within_10_s(process, log, "wait")


@pytest.mark.slow
def test_a_dags_test_run_waiting_for_an_approval_stops_within_10_s_of_sigterm(airflow_db, tmp_path):
    """dag.test() polls for a person's answer in its own loop (a stranger's run went on for
    ten minutes after `timeout`'s SIGTERM): the approval task's handler stops that wait too."""
    model_dir, log = tmp_path / "model", tmp_path / "dags.log"
    model_dir.mkdir()
    blessing = {"blessed": True, "reason": "", "candidate_export": str(model_dir / "export")}
    (model_dir / "blessing.json").write_text(json.dumps(blessing))
    process = dags_test("tfexp_test_approval_waits", {"model_dir": str(model_dir)}, log)
    asking = lambda: "Waiting for a person to approve" in open(log).read()  # noqa: E731
    wait_while_running(process, log, asking, "the approval request")
    time.sleep(2)  # into dag.test()'s wait for the answer
    stop_within_10_s(process, log, "approve")


def test_a_resumed_continuous_evaluation_pass_stops_on_sigterm(tmp_path, monkeypatch):
    """A deferred ContinuousEvalOperator resumes in `execute_complete`, where Airflow has put
    its own handler back: the pass must still stop on SIGTERM."""
    import time

    from airflow.sdk.exceptions import AirflowTaskTerminated

    from airflow_tfexp.operators import ContinuousEvalOperator

    operator = ContinuousEvalOperator(
        task_id="ce",
        experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
        model_dir=str(tmp_path / "model"),
    )
    reached = []

    def a_long_pass(context, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        reached.append("end")

    monkeypatch.setattr(operator, "_pass", a_long_pass)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)  # Airflow's: on_kill
    try:
        with pytest.raises(AirflowTaskTerminated, match="ce: received SIGTERM and stopped"):
            operator.execute_complete({}, {"status": "success", "checkpoints": []})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert reached == []
