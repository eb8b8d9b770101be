"""RunConfig: defaults, validation and TF_CONFIG parsing."""

from __future__ import annotations

import json

import pytest

from airflow_tfexp.experiment import RunConfig

CLUSTER = {"chief": ["c:1"], "worker": ["w0:1", "w1:1"], "ps": ["p0:1"]}


def tf_config(task_type, index=0, cluster=CLUSTER):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_defaults_without_tf_config():
    config = RunConfig(model_dir="/m", tf_config="")
    assert config.save_checkpoints_secs == 600 and config.save_checkpoints_steps is None
    assert config.keep_checkpoint_max == 5 and config.log_step_count_steps == 100
    assert config.tf_random_seed is None
    assert (config.task_type, config.task_id, config.is_chief, config.master) == (None, 0, True, "")
    assert (config.num_worker_replicas, config.num_ps_replicas, config.cluster_spec) == (1, 0, {})


def test_steps_turn_off_the_seconds_default():
    config = RunConfig(save_checkpoints_steps=50, tf_config="")
    assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (50, None)
    assert config.replace(save_checkpoints_secs=30).save_checkpoints_steps is None


def test_both_checkpoint_cadences_is_an_error():
    with pytest.raises(
        ValueError, match="both `save_checkpoints_secs` and `save_checkpoints_steps`"
    ):
        RunConfig(save_checkpoints_steps=10, save_checkpoints_secs=10, tf_config="")


@pytest.mark.parametrize(
    ("task_type", "index", "chief", "master"),
    [
        ("chief", 0, True, "grpc://c:1"),
        ("worker", 1, False, "grpc://w1:1"),
        ("ps", 0, False, "grpc://p0:1"),
        ("evaluator", 0, False, ""),
    ],
)
def test_cluster_roles(task_type, index, chief, master):
    config = RunConfig(tf_config=tf_config(task_type, index))
    assert (config.task_type, config.task_id, config.is_chief, config.master) == (
        task_type,
        index,
        chief,
        master,
    )
    assert config.num_worker_replicas == 3 and config.num_ps_replicas == 1
    assert config.cluster_spec == CLUSTER


def test_worker_zero_is_chief_without_a_chief():
    config = RunConfig(tf_config=tf_config("worker", 0, {"worker": ["a:1", "b:1"]}))
    assert config.is_chief


def test_tf_config_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config("worker", 1))
    assert RunConfig().task_id == 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{not json", "`TF_CONFIG`: not JSON"),
        ("[1]", "expected a JSON object"),
        (json.dumps({"cluster": {"worker": "a:1"}}), "`TF_CONFIG.cluster.worker`"),
        (json.dumps({"cluster": {"worker": ["nohostport"]}}), "`TF_CONFIG.cluster.worker`"),
        (json.dumps({"cluster": {"gpu": ["a:1"]}}), "`TF_CONFIG.cluster` job 'gpu'"),
        (
            json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"index": 0}}),
            "`TF_CONFIG.task.type`: missing",
        ),
        (
            json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "boss"}}),
            "`TF_CONFIG.task.type`. Received: 'boss'",
        ),
        (
            json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}),
            "`TF_CONFIG.task.index`. Received: 3",
        ),
        (
            json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}),
            "`TF_CONFIG.task.index`. Received: '0'",
        ),
        (
            json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}),
            "'ps' has no entry",
        ),
        (json.dumps({"task": "worker"}), "`TF_CONFIG.task`"),
    ],
)
def test_malformed_tf_config_names_the_field(raw, field):
    with pytest.raises(ValueError) as info:
        RunConfig(tf_config=raw)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"save_checkpoints_steps": 0}, "save_checkpoints_steps"),
        ({"keep_checkpoint_max": -1}, "keep_checkpoint_max"),
        ({"log_step_count_steps": 0}, "log_step_count_steps"),
        ({"tf_random_seed": "7"}, "tf_random_seed"),
    ],
)
def test_bad_values_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        RunConfig(tf_config="", **kwargs)


def test_replace_rejects_unknown_arguments():
    with pytest.raises(ValueError, match=r"unknown arguments \['save_every'\]"):
        RunConfig(tf_config="").replace(save_every=3)


@pytest.mark.parametrize("task_type", ["worker", "ps"])
def test_only_the_chief_of_a_parameter_server_cluster_trains(tmp_path, task_type):
    from airflow_tfexp.experiment.estimator.distribution import select_strategy

    config = RunConfig(model_dir=str(tmp_path), tf_config=tf_config(task_type, 0))
    with pytest.raises(ValueError) as err:
        select_strategy(config)
    assert str(err.value) == (
        f"TF_CONFIG makes this process {task_type}:0 of a parameter-server cluster (1 ps): only "
        "the chief trains (it coordinates the workers); worker and ps tasks run "
        "`Experiment.run_std_server()`."
    )
