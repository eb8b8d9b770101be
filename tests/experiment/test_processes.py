"""The command line across processes: kill and resume, trainer + evaluator, servers, bad input."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from tests.experiment.processes import kill_group, last_json_line, run_cli, start_cli, wait_until

pytestmark = pytest.mark.slow


def trained_steps(step_log):
    with open(step_log) as handle:
        return [int(line) for line in handle if line.strip()]


def test_sigkill_mid_training_then_restart_reaches_train_steps_exactly(tmp_path):
    """Kill -9 mid-run, restart: final step == train_steps, at most one checkpoint interval repeated."""
    model_dir, step_log = tmp_path / "model", str(tmp_path / "steps.log")
    interval, train_steps = 50, 600
    params = {
        "train_steps": train_steps,
        "save_checkpoints_steps": interval,
        "step_log": step_log,
        "step_sleep_secs": 0.005,
    }
    trainer = start_cli(model_dir, "train", params, log_path=tmp_path / "first.log")
    try:
        wait_until(
            lambda: os.path.exists(step_log) and len(trained_steps(step_log)) >= 230,
            timeout=90,
            what="230 trained steps",
        )
        os.killpg(trainer.pid, signal.SIGKILL)
        trainer.wait(timeout=30)
    finally:
        kill_group(trainer)
    killed_at = trained_steps(step_log)[-1]
    assert killed_at < train_steps and read_completion_marker(str(model_dir)) is None
    resumed_from = list_checkpoints(str(model_dir))[-1].global_step
    assert killed_at - resumed_from < interval + 5  # the last checkpoint is recent

    result = run_cli(model_dir, "train", params)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = trained_steps(step_log)
    assert steps[-1] == train_steps
    assert read_completion_marker(str(model_dir))["global_step"] == train_steps
    restart_index = steps.index(resumed_from + 1, len(steps) - (train_steps - resumed_from))
    assert steps[restart_index:] == list(range(resumed_from + 1, train_steps + 1))
    repeated = len(steps) - train_steps
    assert 0 <= repeated <= interval, f"{repeated} steps trained twice"


def test_trainer_and_continuous_evaluator_in_separate_processes(tmp_path):
    """Every checkpoint is evaluated although keep_checkpoint_max=1 and evaluation is slower
    than training; the evaluator stops on the completion marker; early stopping across
    processes stops the trainer (mode=max on a falling loss: no improvement)."""
    model_dir = tmp_path / "model"
    common = {
        "save_checkpoints_steps": 20,
        "keep_checkpoint_max": 1,
        "train_steps": None,
        "step_sleep_secs": 0.01,
        "step_log": str(tmp_path / "steps.log"),
        "early_stopping": {"metric": "loss", "mode": "max", "patience": 3},
    }
    evaluator_cfg = {
        "cluster": {"chief": ["localhost:1"]},
        "task": {"type": "evaluator", "index": 0},
    }
    evaluator = start_cli(
        model_dir,
        None,
        {**common, "throttle_secs": 0},
        tf_config=evaluator_cfg,
        log_path=tmp_path / "evaluator.log",
    )
    try:
        trained = run_cli(model_dir, "train", common, timeout=240)
        assert trained.returncode == 0, trained.stderr[-3000:]
        evaluator.wait(timeout=120)
    finally:
        kill_group(evaluator)
    assert evaluator.returncode == 0, (tmp_path / "evaluator.log").read_text()[-3000:]
    marker = read_completion_marker(str(model_dir))
    assert "ran out or a hook stopped" in marker["reason"]
    evaluated = [r["global_step"] for r in read_results(str(model_dir), "continuous")]
    assert evaluated[-1] == marker["global_step"]
    saved = sorted({s for s in trained_steps(common["step_log"]) if s % 20 == 0})
    # The default evaluator (latest only) evaluated the checkpoints it found; none was lost
    # while it read it, and at least the patience + 1 evaluations happened before the stop.
    assert len(evaluated) >= 4 and set(evaluated) <= set(saved) | {marker["global_step"], 0}
    assert "not improved for 3 evaluations" in trained.stderr
    # keep_checkpoint_max=1, plus at most the one the evaluator was reading at the final save.
    remaining = [c.global_step for c in list_checkpoints(str(model_dir))]
    assert remaining[-1] == marker["global_step"] and len(remaining) <= 2


def test_every_checkpoint_evaluator_protects_checkpoints_from_garbage_collection(tmp_path):
    """keep_checkpoint_max=1, yet an every-checkpoint evaluator evaluates all 13 checkpoints."""
    model_dir = tmp_path / "model"
    params = {"save_checkpoints_steps": 10, "keep_checkpoint_max": 1, "train_steps": 120}
    evaluator = start_cli(
        model_dir,
        "continuous_eval",
        params,
        log_path=tmp_path / "evaluator.log",
        schedule_args={"every_checkpoint": True},
    )
    try:

        def registrations():
            return list((model_dir / "eval_continuous").glob("evaluator-*.json"))

        wait_until(registrations, timeout=60, what="the evaluator's registration")
        trained = run_cli(model_dir, "train", params, timeout=240)
        assert trained.returncode == 0, trained.stderr[-3000:]
        evaluator.wait(timeout=120)
    finally:
        kill_group(evaluator)
    log = (tmp_path / "evaluator.log").read_text()
    assert evaluator.returncode == 0, log[-3000:]
    evaluated = [r["global_step"] for r in read_results(str(model_dir), "continuous")]
    assert evaluated == list(range(0, 121, 10))
    assert "Keeping" in trained.stderr and "has not evaluated it yet" in trained.stderr
    assert registrations() == []  # withdrawn on exit: garbage collection resumes


def test_default_schedule_follows_the_tf_config_task_type(tmp_path):
    model_dir = tmp_path / "model"
    trained = run_cli(model_dir, params={"train_steps": 40})  # no TF_CONFIG: train_and_evaluate
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = last_json_line(trained.stdout)
    assert summary["schedule"] == "train_and_evaluate" and summary["metrics"]["global_step"] == 40
    assert os.path.isdir(summary["export_paths"][0])

    evaluator_cfg = {
        "cluster": {"chief": ["localhost:1"]},
        "task": {"type": "evaluator", "index": 0},
    }
    evaluated = run_cli(model_dir, params={"train_steps": 40}, tf_config=evaluator_cfg)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert last_json_line(evaluated.stdout)["schedule"] == "continuous_eval"


def free_port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_ps_runs_a_std_server_and_exits_when_training_completes(tmp_path):
    model_dir = tmp_path / "model"
    cluster = {"chief": [f"localhost:{free_port()}"], "ps": [f"localhost:{free_port()}"]}
    ps = start_cli(
        model_dir,
        None,
        {"train_steps": 20},
        tf_config={"cluster": cluster, "task": {"type": "ps", "index": 0}},
        log_path=tmp_path / "ps.log",
    )
    try:
        wait_until(
            lambda: "std server at" in (tmp_path / "ps.log").read_text(),
            timeout=60,
            what="ps start",
        )
        assert ps.poll() is None  # serving while training has not completed
        trained = run_cli(model_dir, "train", {"train_steps": 20})
        assert trained.returncode == 0, trained.stderr[-3000:]
        ps.wait(timeout=30)
    finally:
        kill_group(ps)
    assert ps.returncode == 0
    assert "server exits" in (tmp_path / "ps.log").read_text()


@pytest.mark.parametrize(
    ("experiment_fn", "message"),
    [
        (
            "tests.experiment.no_such_module:experiment_fn",
            "cannot import module 'tests.experiment.no_such_module'",
        ),
        ("tests.experiment.tiny_experiment:missing", "has no attribute 'missing'"),
        ("tests.experiment.tiny_experiment", 'Expected "module:function"'),
        (
            "tests.experiment.tiny_experiment:not_an_experiment",
            "must return an Experiment. Received: str",
        ),
    ],
)
def test_bad_experiment_fn_is_a_clear_error(tmp_path, experiment_fn, message):
    result = run_cli(tmp_path, "train", experiment_fn=experiment_fn)
    assert result.returncode == 2
    assert message in result.stderr


def test_bad_params_tf_config_and_schedule_are_clear_errors(tmp_path):
    bad_params = run_cli(tmp_path, "train", params=[1, 2])
    assert bad_params.returncode == 2
    assert "`--params`. Received: '[1, 2]'. Expected a JSON object" in bad_params.stderr
    bad_args = run_cli(tmp_path, "train", schedule_args={"delay": 1})
    assert (
        bad_args.returncode == 2
        and "`--schedule-args`" in bad_args.stderr
        and "'delay'" in bad_args.stderr
    )
    bad_tf_config = run_cli(tmp_path, "train", tf_config="{oops")
    assert bad_tf_config.returncode == 2 and "Invalid `TF_CONFIG`: not JSON" in bad_tf_config.stderr
    bad_schedule = run_cli(tmp_path, "fit")
    assert bad_schedule.returncode == 2 and "invalid choice: 'fit'" in bad_schedule.stderr


def test_two_workers_train_with_multi_worker_mirrored_strategy(tmp_path):
    """Two worker processes on localhost: one global step sequence, the chief's checkpoints only."""
    model_dir = tmp_path / "model"
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    workers = [
        start_cli(
            model_dir,
            "train",
            {"train_steps": 40},
            log_path=tmp_path / f"worker{i}.log",
            tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.wait(timeout=180)
    finally:
        for worker in workers:
            kill_group(worker)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert [w.returncode for w in workers] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert all("MultiWorkerMirroredStrategy as worker" in log for log in logs)
    assert all("training step 40/40" in log for log in logs)
    assert [c.global_step for c in list_checkpoints(str(model_dir))] == [0, 20, 40]
    assert not (model_dir / ".workers" / "worker-1").exists()  # the non-chief's scratch is gone
    assert read_completion_marker(str(model_dir))["global_step"] == 40
