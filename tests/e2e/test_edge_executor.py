"""End to end on a real Airflow: scheduler, triggerer, dag-processor, api-server, and an
EdgeExecutor worker serving queue `gpu`. Factory DAGs are triggered through the REST API."""

from __future__ import annotations

import os
import shutil
import signal
from urllib.parse import quote

import pytest
import yaml

from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.export.export_dirs import list_exports
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from tests.e2e.cluster import AirflowCluster
from tests.experiment.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ONE_LINER = "from airflow_tfexp.dag_factory import load_experiment_dag\ndag = load_experiment_dag(__file__[:-3] + '.yaml')\n"
GPU = {"executor": "EdgeExecutor", "queue": "gpu", "gpus": 1}


def experiment(dag_id: str, **extra):
    return {
        "dag_id": dag_id,
        "schedule_mode": "per_checkpoint",
        "model_dir": "{{ params.model_dir }}",
        "model_fn": "tests.experiment.tiny_experiment:model_fn",
        "train_input_fn": "tests.experiment.tiny_experiment:train_input_fn",
        "eval_input_fn": "tests.experiment.tiny_experiment:eval_input_fn",
        "params": {"model_dir": "/tmp/unused"},
        "train_steps": 60,
        "eval_steps": None,
        "run_config": {"save_checkpoints_steps": 20, "keep_checkpoint_max": None},
        "exporters": [{"type": "final"}],
        "evaluation": {"poll_interval": 1, "wait": "defer"},
        "compute": {"train": GPU, "evaluate": GPU, "export": GPU},
        # Retries absorb two races of a loaded 2-core machine: a trigger that fires before the
        # scheduler processed the deferral's executor event, and edge3 fetching a job twice.
        "default_args": {"retry_delay": 2},
        **extra,
    }


def approval(dag_id: str, timeout: str) -> dict:
    """Train a tiny model, bless it, and ask a person before publishing it."""
    return {
        "dag_id": dag_id,
        "schedule_mode": "train_and_evaluate",
        "model_dir": "{{ params.model_dir }}",
        "publish_dir": "{{ params.publish_dir }}",
        "model_fn": "tests.experiment.tiny_experiment:model_fn",
        "train_input_fn": "tests.experiment.tiny_experiment:train_input_fn",
        "eval_input_fn": "tests.experiment.tiny_experiment:eval_input_fn",
        "params": {"model_dir": "/tmp/unused", "publish_dir": "/tmp/unused-published"},
        "train_steps": 40,
        "eval_steps": None,
        "run_config": {"save_checkpoints_steps": 20},
        "exporters": [{"type": "final"}],
        "blessing": {"approval": "required", "approval_timeout": timeout},
        "default_args": {"retry_delay": 2},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    dags = root / "dags"
    dags.mkdir()
    configs = {
        # Training takes a few seconds (slowed steps), so the sensor has to wait for it.
        "tfexp_e2e_edge": experiment(
            "tfexp_e2e_edge",
            model_fn=None,
            train_input_fn=None,
            eval_input_fn=None,
            exporters=[],
            experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
            params={
                "model_dir": "/tmp/unused",
                "save_checkpoints_steps": 20,
                "keep_checkpoint_max": None,
                "step_sleep_secs": 0.05,
            },
        ),
        # The user's own experiment_fn (with a hook that logs each step and the trainer's pid).
        "tfexp_e2e_retry": {
            "dag_id": "tfexp_e2e_retry",
            "schedule_mode": "train_and_evaluate",
            "model_dir": "{{ params.model_dir }}",
            "experiment_fn": "tests.experiment.tiny_experiment:experiment_fn",
            "train_steps": 300,
            "params": {
                "model_dir": "/tmp/unused",
                "save_checkpoints_steps": 50,
                "keep_checkpoint_max": None,
                # run conf overrides declared params only
                "step_log": "",
                "pid_file": "",
                "step_sleep_secs": 0.0,
            },
            "evaluation": {"poll_interval": 1, "wait": "defer", "every_checkpoint": True},
            "compute": {"train": GPU, "evaluate": GPU, "export": GPU},
            "default_args": {"retry_delay": 2},
        },
        # A sweep of two trials, one per wave: the second wave is a run the first one starts.
        "tfexp_e2e_sweep": {
            "dag_id": "tfexp_e2e_sweep",
            "model_dir": "{{ params.model_dir }}",
            "experiment_fn": "tests.experiment.tiny_experiment:experiment_fn",
            "train_steps": 300,
            "params": {
                "model_dir": "/tmp/unused",
                "save_checkpoints_steps": 50,
                "step_log": "",
                "pid_file": "",
                "step_sleep_secs": 0.0,
            },
            "tuning": {
                "search_space": {"learning_rate": {"type": "float", "low": 0.001, "high": 0.05}},
                "trials": 2,
                "parallel": 1,
                "sampler": "random",
                "seed": 1,
            },
            "default_args": {"retry_delay": 2},
        },
        "tfexp_e2e_approval": approval("tfexp_e2e_approval", "10m"),
        "tfexp_e2e_approval_timeout": approval("tfexp_e2e_approval_timeout", "2s"),
    }
    for dag_id, config in configs.items():
        (dags / f"{dag_id}.yaml").write_text(yaml.safe_dump(config))
        (dags / f"{dag_id}.py").write_text(ONE_LINER)
    cluster = AirflowCluster(str(root / "home"), str(dags))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        artifacts = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts", "e2e")
        os.makedirs(artifacts, exist_ok=True)
        for name in ("standalone", "edge-worker"):
            shutil.copy(os.path.join(cluster.home, f"{name}.log"), artifacts)


def test_factory_dag_runs_gpu_stages_on_the_edge_worker_and_waits_in_the_triggerer(
    cluster, tmp_path
):
    model_dir = str(tmp_path / "model")
    run = cluster.trigger("tfexp_e2e_edge", {"model_dir": model_dir})
    tis = cluster.task_instances("tfexp_e2e_edge", run["dag_run_id"])
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tis]
    by_task: dict[str, list[dict]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    for task_id in ("train", "evaluate", "export"):
        assert {(t["executor"], t["queue"], t["state"]) for t in by_task[task_id]} == {
            ("EdgeExecutor", "gpu", "success")
        }
    (sensor,) = by_task["wait_for_checkpoints"]
    assert sensor["executor"] is None and sensor["queue"] != "gpu"
    assert len(by_task["evaluate"]) == 4  # checkpoints 0, 20, 40, 60
    # The sensor's log (of any try: a retry may absorb a scheduler race) shows the deferral.
    sensor_log = cluster.all_logs(
        "tfexp_e2e_edge", run["dag_run_id"], "wait_for_checkpoints", sensor["try_number"]
    )
    assert "Pausing task as DEFERRED" in sensor_log and "Trigger fired event" in sensor_log
    (train,) = by_task["train"]
    train_log = cluster.all_logs("tfexp_e2e_edge", run["dag_run_id"], "train", train["try_number"])
    assert "training step 60/60" in train_log  # progress reaches the task log in the UI
    assert sorted(r["global_step"] for r in read_results(model_dir, "continuous")) == [
        0,
        20,
        40,
        60,
    ]
    assert list_exports(os.path.join(model_dir, "export", "latest"))
    assert "tfexp_e2e_edge" in cluster.log("edge-worker")


def kill_training_after_120_steps(tmp_path, model_dir: str):
    """A run conf whose training logs its steps and pid (slowed to 0.03 s a step), and a
    started thread that SIGKILLs the training process once 120 steps are logged: mid-run."""
    import threading

    step_log, pid_file = str(tmp_path / "steps.log"), str(tmp_path / "train.pid")
    conf = {
        "model_dir": model_dir,
        "step_log": step_log,
        "pid_file": pid_file,
        "step_sleep_secs": 0.03,
    }

    def killer():
        wait_until(
            lambda: os.path.exists(step_log) and sum(1 for _ in open(step_log)) >= 120,
            240,
            what="120 steps",
        )
        os.kill(int(open(pid_file).read()), signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return conf, step_log, thread


def test_a_killed_train_task_is_retried_and_resumes_from_its_last_checkpoint(cluster, tmp_path):
    model_dir = str(tmp_path / "model")
    conf, step_log, thread = kill_training_after_120_steps(tmp_path, model_dir)
    run = cluster.trigger("tfexp_e2e_retry", conf, timeout=420)
    thread.join(timeout=5)
    tis = {t["task_id"]: t for t in cluster.task_instances("tfexp_e2e_retry", run["dag_run_id"])}
    assert run["state"] == "success", {k: v["state"] for k, v in tis.items()}
    assert tis["train"]["try_number"] >= 2 and tis["train"]["queue"] == "gpu"
    steps = [int(line) for line in open(step_log)]
    assert steps[-1] == 300
    repeated = len(steps) - 300
    assert 0 <= repeated <= 50, f"{repeated} steps trained twice (one checkpoint interval is 50)"
    retry_log = cluster.all_logs(
        "tfexp_e2e_retry", run["dag_run_id"], "train", tis["train"]["try_number"]
    )
    assert "Restoring model from" in retry_log
    evaluated = [r["global_step"] for r in read_results(model_dir, "continuous")]
    assert (
        evaluated == [c.global_step for c in list_checkpoints(model_dir)] == list(range(0, 301, 50))
    )


def test_a_killed_trial_is_retried_from_its_checkpoint_and_the_next_wave_starts_itself(
    cluster, tmp_path
):
    from airflow_tfexp.experiment.tuning.study import StudySpec, open_study

    model_dir = str(tmp_path / "sweep")
    conf, step_log, thread = kill_training_after_120_steps(tmp_path, model_dir)  # trial 0's
    first = cluster.trigger("tfexp_e2e_sweep", conf, timeout=420)
    thread.join(timeout=5)
    tis = cluster.task_instances("tfexp_e2e_sweep", first["dag_run_id"])
    by_task = {(t["task_id"], t["map_index"]): t for t in tis}
    assert first["state"] == "success", {k: v["state"] for k, v in by_task.items()}
    trial = by_task[("trial", 0)]
    assert trial["try_number"] >= 2
    retry_log = cluster.all_logs(
        "tfexp_e2e_sweep", first["dag_run_id"], "trial", trial["try_number"], map_index=0
    )
    assert "Restoring model from" in retry_log
    assert by_task[("continue_sweep", -1)]["state"] == "success"

    def second_wave():
        runs = cluster.api("GET", "/dags/tfexp_e2e_sweep/dagRuns")["dag_runs"]
        done = [r for r in runs if r["dag_run_id"] != first["dag_run_id"]]
        return done[0] if done and done[0]["state"] in ("success", "failed") else None

    second = cluster.wait_for(second_wave, 420, "the second wave", interval=2)
    assert second["state"] == "success" and second["conf"] == conf
    spec = StudySpec.from_value(cluster_study(cluster))
    trials = open_study(spec, model_dir).get_trials()
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE")]
    steps = [int(line) for line in open(step_log)]
    assert steps.count(300) == 2  # both trials reached train_steps
    first_trial = steps[: steps.index(300) + 1]
    assert 0 <= len(first_trial) - 300 <= 50  # trial 0 resumed from its checkpoint
    second_tis = {
        t["task_id"]: t for t in cluster.task_instances("tfexp_e2e_sweep", second["dag_run_id"])
    }
    assert second_tis["export_best"]["state"] == "success"
    best = min(trials, key=lambda t: t.value)
    assert list_exports(os.path.join(model_dir, "trials", str(best.number), "export", "latest"))


def cluster_study(cluster) -> dict:
    """The sweep's study spec, as its DAG carries it (the config's tuning: section)."""
    from airflow_tfexp.dag_factory.builder import load_plan

    plan = load_plan(
        os.path.join(cluster.env["AIRFLOW__CORE__DAGS_FOLDER"], "tfexp_e2e_sweep.yaml")
    )
    return next(s for s in plan["stages"] if s["task_id"] == "suggest_trials")["arguments"]["study"]


def hitl_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve/-1/hitlDetails"


def awaiting_approval(cluster, dag_id: str, run_id: str) -> dict | None:
    """The approval request once the approve task waits for it (no worker slot held)."""
    states = {t["task_id"]: t["state"] for t in cluster.task_instances(dag_id, run_id)}
    if states.get("approve") != "awaiting_input":
        assert states.get("approve") in (None, "scheduled", "queued", "running"), states
        return None
    return cluster.api("GET", hitl_path(dag_id, run_id))


def parked_try_ended(cluster, dag_id: str, run_id: str) -> bool:
    """Whether the scheduler has processed the end of the process that parked `approve`."""
    wanted = f"dag_id={dag_id}, task_id=approve, run_id={run_id},"
    return any(
        "TaskInstance Finished" in line and wanted in line and "state=awaiting_input" in line
        for line in cluster.log("standalone").splitlines()
    )


def test_a_person_rejects_then_approves_a_candidate_through_the_rest_api(cluster, tmp_path):
    from airflow_tfexp.experiment.retraining.lineage import read_lineage
    from airflow_tfexp.experiment.retraining.publishing import latest_published

    dag_id, publish_dir = "tfexp_e2e_approval", str(tmp_path / "published")
    decisions = []
    for day, (option, reason) in enumerate(
        [("Reject", "the eval set changed this week"), ("Approve", "checked the slices")]
    ):
        model_dir = str(tmp_path / f"day{day}")
        run_id = cluster.start_run(dag_id, {"model_dir": model_dir, "publish_dir": publish_dir})
        request = cluster.wait_for(
            lambda r=run_id: awaiting_approval(cluster, dag_id, r), 300, "the approval request", 2
        )
        # A person reads first. Airflow 3.3 loses an answer that resumes the task before the
        # scheduler has seen the parking try's process end (seconds on a loaded machine): that
        # stale "success" then fails the resumed try (apache/airflow#72716, #71579), and the
        # retry asks again. So the answer waits for the scheduler's record of that end.
        cluster.wait_for(
            lambda r=run_id: parked_try_ended(cluster, dag_id, r), 120, "the parked try's end", 1
        )
        # what the person sees: the candidate's (and baseline's) metrics and the run page
        assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
        assert "| loss |" in request["body"] and "none published" in request["body"]
        assert f"/tfexp/dags/{dag_id}/runs/{quote(run_id, safe='')}" in request["body"]
        assert request["subject"] == f"Publish the candidate model of {dag_id}?"
        answer = cluster.api(
            "PATCH",
            hitl_path(dag_id, run_id),
            {"chosen_options": [option], "params_input": {"reason": reason}},
        )
        assert answer["chosen_options"] == [option]
        run = cluster.wait_for_run(dag_id, run_id, timeout=300)
        states = {t["task_id"]: t["state"] for t in cluster.task_instances(dag_id, run_id)}
        assert run["state"] == "success", states
        assert states["approve"] == "success"
        assert states["publish"] == ("skipped" if option == "Reject" else "success")
        decisions.append(read_lineage(model_dir)["approval"])
        if option == "Reject":
            assert latest_published(publish_dir) is None
    rejected, approved = decisions
    assert rejected["decision"] == "rejected" and approved["decision"] == "approved"
    assert rejected["reason"] == "the eval set changed this week"
    assert approved["reason"] == "checked the slices"
    assert rejected["responded_by"] and rejected["candidate_export"].startswith(
        str(tmp_path / "day0")
    )
    published = latest_published(publish_dir)
    assert published["version"] == 1
    assert published["source"] == approved["candidate_export"]


def test_no_answer_before_the_timeout_is_a_rejection(cluster, tmp_path):
    from airflow_tfexp.experiment.retraining.lineage import read_lineage
    from airflow_tfexp.experiment.retraining.publishing import latest_published

    dag_id, model_dir = "tfexp_e2e_approval_timeout", str(tmp_path / "model")
    publish_dir = str(tmp_path / "published")
    run = cluster.trigger(dag_id, {"model_dir": model_dir, "publish_dir": publish_dir}, 300)
    states = {t["task_id"]: t["state"] for t in cluster.task_instances(dag_id, run["dag_run_id"])}
    assert run["state"] == "success", states
    assert states["publish"] == "skipped"
    record = read_lineage(model_dir)["approval"]
    assert record["decision"] == "timed_out" and record["responded_by"] is None
    assert record["reason"] == "no answer within 2s"
    assert latest_published(publish_dir) is None
