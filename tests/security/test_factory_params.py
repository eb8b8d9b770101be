"""A factory config declares which params a run may override (`params:`, each with an
optional JSON schema); a run's conf cannot change anything else, and an override that fails
its schema is refused when the run is created."""

from __future__ import annotations

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError

from airflow_tfexp.dag_factory import ExperimentConfigError, build_experiment_dag

CONFIG = {
    "dag_id": "tfexp_declared_params",
    "model_dir": "/tmp/tfexp_declared/{{ params.team_dir }}",
    "model_fn": "tests.experiment.tiny_experiment:model_fn",
    "train_input_fn": "tests.experiment.tiny_experiment:train_input_fn",
    "eval_input_fn": "tests.experiment.tiny_experiment:eval_input_fn",
    "train_steps": 100,
    "params": {
        "learning_rate": {
            "default": 0.1,
            "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "description": "SGD step size",
        },
        "team_dir": {"default": "a", "schema": {"type": "string", "pattern": "^[a-z]+$"}},
        "hidden_units": [8, 4],
    },
}


def dag_for(config=CONFIG):
    return build_experiment_dag(copy.deepcopy(config), source="declared.yaml")


def test_declared_params_are_the_dags_with_their_schemas():
    dag = dag_for()
    param = dag.params.get_param("learning_rate")
    assert param.value == 0.1 and param.description == "SGD step size"
    assert param.schema == {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
    assert dag.params["hidden_units"] == [8, 4]
    train = dag.get_task("train")
    assert train.overridable_params == ["hidden_units", "learning_rate", "team_dir"]


@pytest.mark.parametrize(
    "conf, key",
    [
        ({"learning_rate": -1}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"team_dir": "../team_b"}, "team_dir"),
    ],
)
def test_an_override_that_fails_its_schema_is_refused_naming_the_key(conf, key):
    params = copy.deepcopy(dag_for().params)
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {key}"):
        params.update(conf)  # what Airflow does with a run's conf when it creates the run


def test_a_conf_value_for_an_undeclared_key_does_not_reach_the_experiment(capsys):
    config = {
        **copy.deepcopy(CONFIG),
        "experiment_fn": "tests.experiment.tiny_experiment:experiment_fn",
    }
    for key in ("model_fn", "train_input_fn", "eval_input_fn"):
        config.pop(key)
    train = dag_for(config).get_task("train")
    context = {
        "params": {
            **train.authored_params,
            "train_steps": 10**9,
            "added": "x",
            "learning_rate": 0.5,
        }
    }
    params = train.experiment_params(context)
    assert params["train_steps"] == 100  # the config's, not the run's
    assert "added" not in params
    assert params["learning_rate"] == 0.5  # declared: the run may choose it
    assert "Ignoring the run's value of 'train_steps'" in capsys.readouterr().out


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"default": 0, "schema": {"type": "number", "exclusiveMinimum": 0}},
            "params.lr: the default 0 fails its schema",
        ),
        (
            {"default": 1, "schema": {"type": "nonsense"}},
            "params.lr.schema is not a valid JSON schema",
        ),
        ({"default": 1, "schema": [1]}, "params.lr.schema: expected a JSON schema"),
    ],
)
def test_a_bad_declaration_is_a_config_error_naming_the_param(entry, message):
    config = copy.deepcopy(CONFIG)
    config["params"] = {"lr": entry}
    with pytest.raises(ExperimentConfigError, match=message):
        dag_for(config)


def test_a_config_may_not_declare_the_providers_own_params():
    config = copy.deepcopy(CONFIG)
    config["params"] = {"tfexp_spec": "{}"}
    with pytest.raises(ExperimentConfigError, match="'tfexp_spec': params starting with 'tfexp_'"):
        dag_for(config)


@pytest.mark.parametrize(
    "model_dir, message",
    [
        (
            "/tmp/x/{{ params.nope }}",
            "model_dir: the template uses params.nope, which params: does not declare",
        ),
        ("/tmp/x/{{ dag_run.conf['dir'] }}", "model_dir: the template reads 'dag_run'"),
        ("/tmp/x/{{ params['nope'] }}", "params.nope, which params: does not declare"),
    ],
)
def test_a_templated_path_may_read_only_declared_params(model_dir, message):
    config = copy.deepcopy(CONFIG)
    config["model_dir"] = model_dir
    with pytest.raises(ExperimentConfigError, match=message):
        dag_for(config)
    config["model_dir"] = "/tmp/x/{{ params.team_dir }}/{{ run_id }}"  # declared, and run_id
    assert dag_for(config).dag_id == CONFIG["dag_id"]


@pytest.mark.parametrize(
    "template",
    [
        "/tmp/x/{{ (params|dictsort|first)[1] }}",
        "/tmp/x/{{ params|tojson }}",
        "/tmp/x/{{ task.params.evil }}",
        "/tmp/x/{{ dag.params.evil }}",
    ],
)
def test_filters_and_objects_that_reach_every_param_are_refused(template):
    config = copy.deepcopy(CONFIG)
    config["model_dir"] = template
    with pytest.raises(ExperimentConfigError, match="model_dir: the template"):
        dag_for(config)
