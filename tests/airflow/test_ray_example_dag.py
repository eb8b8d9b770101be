"""The example DAGs with `launcher: ray` under dag.test(): two Ray workers train (data-parallel,
or coordinated by a chief with a parameter server), then the checkpoint is evaluated and
exported."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment.export.export_dirs import list_exports
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.experiment.storage.fs import join
from tests.airflow.conftest import load_dag, task_instances

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def train_result(dag, run) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == "train",
                XComModel.key == "return_value",
            )
        ).one()
        return XComModel.deserialize_value(row)


def run_example(dag_id: str, model_dir: str) -> dict:
    """Run an example under dag.test(): train (200 steps) -> evaluate -> export all succeed,
    checkpoints at 0, 100 and 200; returns the train task's result."""
    dag = load_dag(dag_id)
    run = dag.test(
        run_conf={"model_dir": model_dir, "train_steps": 200, "save_checkpoints_steps": 100}
    )
    assert run.state == "success"
    assert {ti.task_id: ti.state for ti in task_instances(dag, run)} == {
        "train": "success",
        "evaluate": "success",
        "export": "success",
    }
    assert [c.global_step for c in list_checkpoints(model_dir)] == [0, 100, 200]
    return train_result(dag, run)


def test_the_ray_example_trains_on_two_workers_then_evaluates_and_exports(
    airflow_db, tmp_path, capfd
):
    model_dir = str(tmp_path / "model")
    result = run_example("tfexp_digits_ray", model_dir)
    assert [w["task"] for w in result["workers"]] == ["worker-0", "worker-1"]
    assert {w["global_step"] for w in result["workers"]} == {200}
    assert len({w["variables_fingerprint"] for w in result["workers"]}) == 1
    assert list_exports(join(model_dir, "export", "latest"))
    # Each worker's progress reaches the task's output (Ray forwards worker logs to the driver).
    output = "".join(capfd.readouterr())
    assert "RayTrainWorker" in output
    progress = [line for line in output.splitlines() if "training step 100/200" in line]
    assert len(progress) >= 2, output[-3000:]  # one line per worker
    assert all("steps/s" in line for line in progress)


def test_the_parameter_server_example_trains_then_evaluates_and_exports(
    airflow_db, tmp_path, capfd
):
    model_dir = str(tmp_path / "model")
    result = run_example("tfexp_digits_ray_ps", model_dir)
    assert [(w["task"], w["global_step"]) for w in result["workers"]] == [("chief-0", 200)]
    assert [s["task"] for s in result["servers"]] == ["ps-0", "worker-0", "worker-1"]
    assert result["stopped_servers"] == []  # each server exited by itself
    assert list_exports(join(model_dir, "export", "latest"))
    output = "".join(capfd.readouterr())
    progress = [line for line in output.splitlines() if "training step 100/200" in line]
    assert progress and all("ClusterTask" in line and "steps/s" in line for line in progress)
    assert "ps-0 exited after serving" in output


def test_a_factory_train_and_evaluate_task_trains_on_ray_then_evaluates_and_exports(
    airflow_db, tmp_path, monkeypatch
):
    from tests.airflow.test_factory_dags import tiny_config, write_factory_dag
    from tests.e2e.cluster import ROOT

    monkeypatch.setenv("PYTHONPATH", ROOT)  # the Ray workers import the tests' model
    model_dir = str(tmp_path / "model")
    config = tiny_config(
        "local",
        model_dir,
        dag_id="tfexp_tiny_local_ray",
        distribution={
            "strategy": "parameter_server",
            "num_workers": 2,
            "num_ps": 1,
            "launcher": "ray",
        },
    )
    dag = write_factory_dag(config)
    run = dag.test()
    assert run.state == "success"
    assert [c.global_step for c in list_checkpoints(model_dir)] == [0, 20, 40, 60]
    (export,) = list_exports(join(model_dir, "export", "final"))
    assert export
