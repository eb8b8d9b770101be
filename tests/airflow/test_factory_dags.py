"""Factory DAGs under dag.test(): each schedule mode runs the real experiment end to end."""

from __future__ import annotations

import pytest

from airflow_tfexp.dag_factory import build_experiment_dag
from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.export.export_dirs import list_exports
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.experiment.storage.fs import join
from tests.airflow.conftest import load_dag, task_instances

pytestmark = pytest.mark.slow


def test_the_yaml_digits_experiment_trains_evaluates_every_checkpoint_and_exports(
    airflow_db, model_dir
):
    dag = load_dag("tfexp_digits_factory")
    assert sorted(dag.task_ids) == ["continuous_eval", "export", "train"]
    run = dag.test(run_conf={"model_dir": model_dir})
    assert run.state == "success"
    assert (
        read_completion_marker(model_dir)["global_step"] == 1000
    )  # train_steps comes from the YAML
    evaluated = [r["global_step"] for r in read_results(model_dir, "continuous")]
    assert (
        evaluated
        == [c.global_step for c in list_checkpoints(model_dir)]
        == [0, 200, 400, 600, 800, 1000]
    )
    assert read_results(model_dir, "continuous")[-1]["metrics"]["accuracy"] > 0.9
    # Continuous evaluation exported after each evaluation and the export task once more:
    # exports_to_keep of the YAML bounds what is kept.
    assert len(list_exports(join(model_dir, "export", "latest"))) == 2
    assert len(list_exports(join(model_dir, "export", "best"))) == 1
    assert {ti.state for ti in task_instances(dag, run)} == {"success"}


def tiny_config(mode, model_dir, **extra):
    return {
        "dag_id": f"tfexp_tiny_{mode}",
        "schedule_mode": mode,
        "model_dir": model_dir,
        "model_fn": "tests.experiment.tiny_experiment:model_fn",
        "train_input_fn": "tests.experiment.tiny_experiment:train_input_fn",
        "eval_input_fn": "tests.experiment.tiny_experiment:eval_input_fn",
        "train_steps": 60,
        "eval_steps": None,
        "run_config": {"save_checkpoints_steps": 20, "keep_checkpoint_max": None},
        "exporters": [{"type": "final"}],
        "evaluation": {"poll_interval": 0.5, "wait": "reschedule"},
        **extra,
    }


@pytest.mark.parametrize("mode", ["per_checkpoint", "local"])
def test_the_other_schedule_modes(airflow_db, tmp_path, mode):
    model_dir = str(tmp_path / "model")
    config = tiny_config(mode, model_dir)
    dag = write_factory_dag(config)
    run = dag.test()
    assert run.state == "success"
    (export,) = list_exports(join(model_dir, "export", "final"))
    assert export
    if mode == "per_checkpoint":
        evaluations = [ti for ti in task_instances(dag, run) if ti.task_id == "evaluate"]
        assert len(evaluations) == 4  # checkpoints 0, 20, 40, 60: one mapped task each
        assert sorted(r["global_step"] for r in read_results(model_dir, "continuous")) == [
            0,
            20,
            40,
            60,
        ]
    else:
        assert dag.task_ids == ["train_and_evaluate"]
        assert read_results(model_dir, None)[-1]["global_step"] == 60


def test_a_config_builds_a_dag_without_files():
    dag = build_experiment_dag(tiny_config("train_and_evaluate", "/tmp/m"))
    assert sorted(dag.task_ids) == ["continuous_eval", "export", "train"]
    assert dag.get_task("export").upstream_task_ids == {"train", "continuous_eval"}


def write_factory_dag(config):
    """dag.test() needs the DAG in a file of the DAGs folder: a YAML file and its one-liner."""
    import os

    import yaml

    base = os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], config["dag_id"])
    with open(base + ".yaml", "w") as handle:
        yaml.safe_dump(config, handle)
    with open(base + ".py", "w") as handle:
        handle.write(
            "from airflow_tfexp.dag_factory import load_experiment_dag\n"
            "dag = load_experiment_dag(__file__.removesuffix('.py') + '.yaml')\n"
        )
    return load_dag(config["dag_id"])


def test_a_factory_retraining_dag_warm_starts_blesses_and_publishes(airflow_db, tmp_path):
    from airflow_tfexp.experiment.retraining.lineage import read_lineage
    from airflow_tfexp.experiment.retraining.publishing import latest_published

    publish_dir = str(tmp_path / "published")
    config = tiny_config(
        "local",
        str(tmp_path / "runs" / "{{ run_id }}"),
        dag_id="tfexp_tiny_retraining",
        warm_start_from="latest_blessed",
        publish_dir=publish_dir,
        blessing={"metric": "accuracy", "mode": "max", "threshold": 0.5},
    )
    dag = write_factory_dag(config)
    assert dag.task_ids == ["train_and_evaluate", "bless", "publish"]
    first, second = dag.test(), dag.test()
    assert first.state == second.state == "success"
    lineage = [read_lineage(str(tmp_path / "runs" / r.run_id)) for r in (first, second)]
    assert lineage[0]["warm_start"]["source"] is None
    assert lineage[1]["warm_start"]["source"] == join(publish_dir, "1")
    assert lineage[0]["published"]["version"] == 1
    # The second run started from the first model and trained 60 more steps: at least as good.
    blessing = lineage[1]["blessing"]
    assert blessing["baseline"] is not None
    published = lineage[1]["published"]
    assert (published is not None) == blessing["blessed"]
    assert latest_published(publish_dir)["version"] == (2 if blessing["blessed"] else 1)


def test_event_driven_builds_a_training_dag_and_an_evaluation_dag_on_the_checkpoint_asset():
    from airflow_tfexp.dag_factory import build_experiment_dags

    dags = build_experiment_dags(
        tiny_config(
            "event_driven",
            "/tmp/watched",
            evaluation={"name": "event", "poll_interval": 2},
            schedule={"assets": ["gs://bucket/data/train/"]},
        )
    )
    training, evaluation = dags["tfexp_tiny_event_driven"], dags["tfexp_tiny_event_driven_evaluate"]
    assert training.get_task("export").upstream_task_ids == {"train"}
    (data,) = training.timetable.asset_condition.objects
    assert data.uri == "gs://bucket/data/train"
    assert evaluation.get_task("evaluate").upstream_task_ids == {"checkpoints"}
    (asset,) = evaluation.timetable.asset_condition.objects
    assert (asset.name, asset.uri) == ("tfexp_tiny_event_driven_checkpoints", "file:///tmp/watched")
    (watcher,) = asset.watchers
    assert watcher.trigger.serialize() == (
        "airflow_tfexp.triggers.checkpoint_event.CheckpointEventTrigger",
        {"model_dir": "/tmp/watched", "name": "event", "poll_interval": 2.0, "gcp_conn_id": None},
    )
    assert evaluation.max_active_runs == 1


def test_per_checkpoint_with_a_model_dir_param_renders_in_every_stage(airflow_db, tmp_path):
    """The pattern of dags/experiments/digits.yaml (`model_dir: "{{ params.model_dir }}"`) in
    per_checkpoint mode: the sensor and every stage render it (the sensor had no params and
    failed with "'dict object' has no attribute 'model_dir'")."""
    model_dir = str(tmp_path / "model")
    config = tiny_config(
        "per_checkpoint",
        "{{ params.model_dir }}",
        dag_id="tfexp_tiny_per_checkpoint_params",
        params={"model_dir": {"default": model_dir, "schema": {"type": "string"}}},
    )
    dag = write_factory_dag(config)
    run = dag.test()
    assert run.state == "success"
    assert sorted(r["global_step"] for r in read_results(model_dir, "continuous")) == [
        0,
        20,
        40,
        60,
    ]
    (export,) = list_exports(join(model_dir, "export", "final"))
    assert export
