"""A run's conf is data: it never renders as a template, never names code, and never replaces
the provider's own params; the DAG file's templates render in Jinja's sandbox."""

from __future__ import annotations

import json
import logging
import os

import jinja2.exceptions
import pytest

from airflow_tfexp.operators import TrainOperator
from airflow_tfexp.operators._run_params import experiment_params
from tests.airflow.conftest import load_dag
from tests.airflow.recording_experiment import RECEIVED

LOG = logging.getLogger(__name__)
TINY = "tests.experiment.tiny_experiment:experiment_fn"


def shell_template(proof: str) -> str:
    """The classic Jinja escape: reach `os` through a global's function globals."""
    return "{{ cycler.__init__.__globals__.os.system('touch " + proof + "') }}"


def received(model_dir: str) -> dict:
    with open(os.path.join(model_dir, RECEIVED)) as handle:
        return json.load(handle)


@pytest.mark.slow  # a dag.test() run that trains, like tests/airflow/test_factory_dags.py
def test_the_dag_files_templates_render_and_the_runs_conf_arrives_as_data(airflow_db, tmp_path):
    proof = str(tmp_path / "proof")
    model_dir = str(tmp_path / "model")
    dag = load_dag("tfexp_test_run_params")
    run = dag.test(run_conf={"model_dir": model_dir, "comment": shell_template(proof)})
    assert run.state == "success"
    params = received(model_dir)
    assert params["train_steps"] == 30  # the author's "{{ 6 * 5 }}", a native int
    assert params["note"].startswith("trained on 20")  # the author's "{{ ds }}"
    assert params["comment"] == shell_template(proof)  # verbatim: never rendered
    assert not os.path.exists(proof)


def test_a_template_from_conf_is_not_rendered_even_where_the_author_wrote_one(tmp_path):
    task = TrainOperator(
        task_id="t",
        experiment_fn=TINY,
        model_dir=str(tmp_path),
        params={"train_steps": "{{ 6 * 5 }}", "extra": "{{ 1 + 1 }}"},
    )
    context = {"params": {"train_steps": "{{ 7 * 5 }}", "extra": "{{ 1 + 1 }}", "added": "{{ 2 }}"}}
    params = experiment_params(task.authored_params, context, task.get_template_env, LOG)
    assert params == {"train_steps": "{{ 7 * 5 }}", "extra": 2, "added": "{{ 2 }}"}
    with pytest.raises(ValueError, match=r"`train_steps`. Received: '\{\{ 7 \* 5 \}\}'"):
        task.execute(context)


def test_a_hostile_template_in_the_dag_file_is_stopped_by_the_sandbox(tmp_path):
    proof = str(tmp_path / "proof")
    task = TrainOperator(
        task_id="t",
        experiment_fn=TINY,
        model_dir=str(tmp_path),
        params={"x": shell_template(proof)},
    )
    with pytest.raises(jinja2.exceptions.SecurityError):
        task.experiment_params({"params": {"x": shell_template(proof)}})
    assert not os.path.exists(proof)


def test_experiment_fn_is_fixed_when_the_dag_is_parsed(tmp_path):
    with pytest.raises(ValueError) as err:
        TrainOperator(task_id="t", experiment_fn="{{ params.fn }}", model_dir=str(tmp_path))
    assert "Invalid value for `experiment_fn`. Received: '{{ params.fn }}'" in str(err.value)
    assert "fixed when the DAG is parsed" in str(err.value)
    assert "experiment_fn" not in TrainOperator.template_fields


@pytest.mark.slow
def test_run_conf_cannot_replace_a_factory_dags_spec(airflow_db, tmp_path, monkeypatch, capfd):
    from tests.airflow.test_factory_dags import tiny_config, write_factory_dag

    proof = str(tmp_path / "proof")
    monkeypatch.setenv("TFEXP_TEST_PROOF", proof)
    model_dir = str(tmp_path / "model")
    dag = write_factory_dag(tiny_config("local", model_dir, dag_id="tfexp_tiny_conf_spec"))
    train = next(t for t in dag.tasks if "tfexp_spec" in (t.params or {}))
    spec = json.loads(train.params["tfexp_spec"])
    hostile = {**spec, "model_fn": "tests.airflow.recording_experiment:leave_proof"}
    run = dag.test(
        run_conf={"tfexp_spec": json.dumps(hostile), "tfexp_asset_events": [{"uri": "x"}]}
    )
    assert run.state == "success"
    assert not os.path.exists(proof)
    output = "".join(capfd.readouterr())
    assert "Ignoring the run's value of 'tfexp_spec': only the DAG file sets tfexp_*." in output
    assert "Ignoring the run's value of 'tfexp_asset_events': only the DAG file" in output


def test_a_mapped_task_gets_the_dag_files_params_not_the_conf_airflow_wrote_into_them(tmp_path):
    """A mapped task's operator is built while the task runs, after Airflow's `process_params`
    has written the run's conf into the (shared) Param objects: the snapshot comes from
    `partial()`, taken when the DAG file was parsed."""
    from airflow.sdk.definitions.param import process_params

    from airflow_tfexp.dag_factory import build_experiment_dag
    from tests.airflow.test_factory_dags import tiny_config

    config = tiny_config("per_checkpoint", str(tmp_path), dag_id="tfexp_mapped", params={"lr": 0.1})
    dag = build_experiment_dag(config)
    mapped = dag.task_dict["evaluate"]
    spec = json.loads(mapped.params["tfexp_spec"])
    hostile = {**spec, "model_fn": "tests.airflow.recording_experiment:leave_proof"}
    conf = {"tfexp_spec": json.dumps(hostile), "lr": "{{ 7 * 6 }}"}
    process_params(dag, mapped, conf, suppress_exception=False)  # the task runner's startup
    operator = mapped.unmap({"checkpoint_path": str(tmp_path / "ckpt-20")})  # render_templates
    params = operator.experiment_params(
        {"params": process_params(dag, operator, conf, suppress_exception=False)}
    )
    assert json.loads(params["tfexp_spec"])["model_fn"] == spec["model_fn"]
    assert params["lr"] == "{{ 7 * 6 }}"  # data: not rendered to 42
