"""OpenLineage pieces that need no DAG run: dataset names by the naming spec, the config hash,
and the lineage a failed step reports (what it was about to read and write)."""

from __future__ import annotations

import pytest

from airflow_tfexp.lineage.naming import dataset_name
from airflow_tfexp.operators import EvaluateOperator, TrainOperator
from airflow_tfexp.operators._lineage import config_hash
from tests.airflow.lineage_events import check_tfexp_facets

TINY = "tests.experiment.tiny_experiment:experiment_fn"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("gs://models/digits/runs/1", ("gs://models", "digits/runs/1")),
        ("gs://models/digits/", ("gs://models", "digits")),
        ("gs://models", ("gs://models", "/")),
        ("/srv/models/digits/", ("file", "/srv/models/digits")),
        ("file:///srv/data/day1.csv", ("file", "/srv/data/day1.csv")),
        ("s3://lake/events/2026/", ("s3://lake", "events/2026")),
        ("gs://b/x?generation=1#f", ("gs://b", "x")),
        ("postgres://db:5432/ml.public.events", ("postgres://db:5432", "/ml.public.events")),
    ],
)
def test_dataset_names_follow_the_openlineage_naming_spec(location, expected):
    assert dataset_name(location) == expected


def test_the_config_hash_is_the_dag_files_not_the_run_conf():
    spec = {"tfexp_spec": '{"model_fn": "m:f"}', "lr": 0.1}
    assert config_hash("m:f", spec) == config_hash("m:f", {**spec, "lr": 0.5})  # factory: spec
    assert config_hash("m:f", {"lr": 0.1}) != config_hash("m:f", {"lr": 0.5})
    assert config_hash("m:f", {"lr": 0.1}) != config_hash("m:g", {"lr": 0.1})
    assert len(config_hash(None, None)) == 64


def as_event(lineage) -> dict:
    """The facets of an OperatorLineage as an event carries them (serialized by the client)."""
    from openlineage.client.serde import Serde

    return {
        "job": {"facets": {k: Serde.to_dict(v) for k, v in lineage.job_facets.items()}},
        "run": {"facets": {k: Serde.to_dict(v) for k, v in lineage.run_facets.items()}},
    }


def test_a_failed_evaluation_reports_the_model_dir_it_read_and_the_experiment(tmp_path):
    model_dir = str(tmp_path / "empty")
    task = EvaluateOperator(task_id="evaluate", experiment_fn=TINY, model_dir=model_dir)
    with pytest.raises(ValueError, match="Nothing to evaluate"):
        task.execute({"params": {}})
    lineage = task.get_openlineage_facets_on_failure(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", model_dir)]
    assert lineage.outputs == [] and lineage.run_facets == {}
    event = as_event(lineage)
    check_tfexp_facets(event)
    facet = event["job"]["facets"]["tfexp_experiment"]
    assert facet["experimentFn"] == TINY and len(facet["configHash"]) == 64


def test_a_trained_model_reports_its_data_warm_start_and_metrics(tmp_path):
    """Train and evaluate: the run's triggering data and the operator's inlets are inputs, the
    model dir and its exports outputs, the final evaluation a run facet."""
    from airflow.sdk import Asset

    from airflow_tfexp.operators import TrainAndEvaluateOperator

    model_dir = str(tmp_path / "model")
    task = TrainAndEvaluateOperator(
        task_id="train_and_evaluate",
        experiment_fn=TINY,
        model_dir=model_dir,
        params={"train_steps": 20, "save_checkpoints_steps": 10},
        inlets=[Asset("gs://lake/digits/2026-11-01")],
        record_lineage=False,
    )
    event_ref = type("Ref", (), {"asset": Asset("file:///srv/data/day1"), "extra": {}})()
    context = {"params": {}, "triggering_asset_events": {"data": [event_ref]}}
    result = task.execute(context)
    lineage = task.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("file", "/srv/data/day1"),
        ("gs://lake", "digits/2026-11-01"),
    ]
    outputs = [(d.namespace, d.name) for d in lineage.outputs]
    assert outputs[0] == ("file", model_dir)
    assert outputs[1:] == [("file", p) for p in result["export_paths"] if p]
    event = as_event(lineage)
    check_tfexp_facets(event)
    metrics = event["run"]["facets"]["tfexp_metrics"]
    assert metrics["metrics"] == pytest.approx(result["metrics"])
    assert metrics["globalStep"] == result["global_step"]


def test_a_plain_train_step_without_warm_start_reads_nothing(tmp_path):
    task = TrainOperator(task_id="train", experiment_fn=TINY, model_dir=str(tmp_path / "m"))
    lineage = task.get_openlineage_facets_on_failure(None)
    assert lineage.inputs == []
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(tmp_path / "m"))]


def test_declared_outlets_are_outputs_and_each_dataset_is_named_once(tmp_path):
    from airflow.sdk import Asset

    from airflow_tfexp.operators import PublishOperator

    task = TrainOperator(
        task_id="train",
        experiment_fn=TINY,
        model_dir=str(tmp_path / "m"),
        outlets=[Asset("gs://my-bucket/models/x/")],
    )
    outputs = [(d.namespace, d.name) for d in task.get_openlineage_facets_on_failure(None).outputs]
    assert outputs == [("file", str(tmp_path / "m")), ("gs://my-bucket", "models/x")]
    publish = PublishOperator(task_id="p", model_dir="/m", publish_dir=str(tmp_path / "pub"))
    publish.lineage_result = {"source": "/m/export/final/1", "version": 4}
    (output,) = publish.get_openlineage_facets_on_complete(None).outputs  # outlet = publish dir
    assert (output.namespace, output.name) == ("file", str(tmp_path / "pub"))
    assert output.facets["version"].datasetVersion == "4"
