"""Run the command line in subprocesses, as a remote worker would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

TINY = "tests.experiment.tiny_experiment:experiment_fn"


def cli_args(model_dir, schedule=None, params=None, experiment_fn=TINY, schedule_args=None):
    args = [
        sys.executable,
        "-m",
        "airflow_tfexp.experiment",
        "--experiment-fn",
        experiment_fn,
        "--model-dir",
        str(model_dir),
    ]
    if schedule:
        args += ["--schedule", schedule]
    if params is not None:
        args += ["--params", json.dumps(params)]
    if schedule_args is not None:
        args += ["--schedule-args", json.dumps(schedule_args)]
    return args


def env(tf_config=None):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    environment.pop("TF_CONFIG", None)
    if tf_config is not None:
        environment["TF_CONFIG"] = (
            tf_config if isinstance(tf_config, str) else json.dumps(tf_config)
        )
    return environment


def run_cli(
    model_dir,
    schedule=None,
    params=None,
    experiment_fn=TINY,
    tf_config=None,
    timeout=120,
    schedule_args=None,
):
    return subprocess.run(
        cli_args(model_dir, schedule, params, experiment_fn, schedule_args),
        env=env(tf_config),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(
    model_dir, schedule=None, params=None, tf_config=None, log_path=None, schedule_args=None
):
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        cli_args(model_dir, schedule, params, schedule_args=schedule_args),
        env=env(tf_config),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def kill_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def last_json_line(stdout):
    return json.loads(stdout.strip().splitlines()[-1])
