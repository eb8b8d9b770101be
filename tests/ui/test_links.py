"""The task buttons: the run's Experiments page, the model dir, TensorBoard when configured."""

from __future__ import annotations

from airflow.models.taskinstancekey import TaskInstanceKey

from airflow_tfexp.links import ExperimentMetricsLink, ModelDirLink, TensorBoardLink
from airflow_tfexp.operators import TrainOperator

KEY = TaskInstanceKey("my dag", "train", "manual__2026-11-28T10:00:00+00:00", 1, -1)


def operator(model_dir="/models/m"):
    return TrainOperator(task_id="train", experiment_fn="m:f", model_dir=model_dir)


def test_experiment_operators_carry_the_three_links():
    names = {link.name for link in operator().operator_extra_links}
    assert names == {"Experiment metrics", "Model dir", "TensorBoard"}


def test_the_metrics_link_opens_the_runs_page(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert ExperimentMetricsLink().get_link(operator(), ti_key=KEY) == (
        "https://airflow.example.com/tfexp/dags/my%20dag/runs/"
        "manual__2026-11-28T10%3A00%3A00%2B00%3A00"
    )


def test_the_model_dir_link_opens_the_gcs_console_for_gs_paths(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "")
    link = ModelDirLink().get_link(operator("gs://bucket/models/m"), ti_key=KEY)
    assert link == "https://console.cloud.google.com/storage/browser/bucket/models/m"
    assert ModelDirLink().get_link(operator(), ti_key=KEY).startswith("/tfexp/dags/my%20dag/runs/")


def test_the_tensorboard_link_appears_only_when_configured(monkeypatch):
    monkeypatch.delenv("AIRFLOW__TFEXP__TENSORBOARD_URL", raising=False)
    assert TensorBoardLink().get_link(operator(), ti_key=KEY) == ""
    monkeypatch.setenv(
        "AIRFLOW__TFEXP__TENSORBOARD_URL", "https://tb.example.com/?logdir={model_dir}"
    )
    assert TensorBoardLink().get_link(operator(), ti_key=KEY) == (
        "https://tb.example.com/?logdir=%2Fmodels%2Fm"
    )
