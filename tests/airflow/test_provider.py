"""Provider registration, parse-time validation, and light imports."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

import pytest

import airflow_tfexp.hooks
import airflow_tfexp.operators
import airflow_tfexp.sensors
import airflow_tfexp.triggers
from airflow_tfexp.get_provider_info import get_provider_info
from airflow_tfexp.operators import (
    BlessOperator,
    EvaluateOperator,
    PublishOperator,
    TrainOperator,
)
from airflow_tfexp.sensors import CheckpointSensor


def adapter_modules() -> list[str]:
    names = []
    for package in (
        airflow_tfexp.hooks,
        airflow_tfexp.operators,
        airflow_tfexp.sensors,
        airflow_tfexp.triggers,
    ):
        names += [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return names


def test_importing_every_adapter_module_leaves_tensorflow_and_optuna_out():
    modules = adapter_modules() + ["airflow_tfexp.get_provider_info"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'google.cloud.storage', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_provider_info_lists_every_module_and_validates_against_airflows_schema():
    import json

    import jsonschema
    from airflow import __file__ as airflow_init

    info = get_provider_info()
    with open(os.path.join(os.path.dirname(airflow_init), "provider_info.schema.json")) as handle:
        jsonschema.validate(info, json.load(handle))
    listed = {
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for m in entry["python-modules"]
    }
    assert listed == {m for m in adapter_modules() if not m.rsplit(".", 1)[1].startswith("_")}


def test_airflow_providers_list_shows_airflow_tfexp():
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    out = subprocess.run(
        [airflow, "providers", "list"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "airflow-tfexp" in out.stdout


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: TrainOperator(
                task_id="t", experiment_fn="my_module.experiment_fn", model_dir="/m"
            ),
            "Invalid value for `experiment_fn`. Received: 'my_module.experiment_fn'. Expected \"module:function\"",
        ),
        (
            lambda: TrainOperator(task_id="t", experiment_fn="a:b:c", model_dir="/m"),
            "`experiment_fn`",
        ),
        (
            lambda: TrainOperator(task_id="t", experiment_fn="m:f", model_dir="s3://bucket/x"),
            "the scheme 's3://' is not supported. Expected a local path or gs://bucket/prefix",
        ),
        (
            lambda: EvaluateOperator(task_id="t", experiment_fn="m:f", model_dir="gs://B!/x"),
            "not a valid bucket name",
        ),
        (
            lambda: TrainOperator(task_id="t", experiment_fn="m:f", model_dir="/m", delay_secs=-1),
            "`delay_secs`",
        ),
        (
            lambda: CheckpointSensor(task_id="s", model_dir="hdfs://nn/m"),
            "'hdfs://' is not supported",
        ),
        (
            lambda: CheckpointSensor(task_id="s", model_dir="/m", after_step="ten"),
            "`after_step`. Received: 'ten'",
        ),
        (
            lambda: TrainOperator(
                task_id="t", experiment_fn="m:f", model_dir="/m", warm_start_from="latest_blessed"
            ),
            '`warm_start_from="latest_blessed"` needs `publish_dir`',
        ),
        (
            lambda: TrainOperator(
                task_id="t", experiment_fn="m:f", model_dir="/m", warm_start_from=""
            ),
            "Invalid value for `warm_start_from`. Received: ''",
        ),
        (
            lambda: BlessOperator(
                task_id="b",
                experiment_fn="m:f",
                model_dir="/m",
                publish_dir="/p",
                metric="loss",
                mode="lower",
            ),
            "Invalid value for `mode`. Received: 'lower'. Expected one of ['min', 'max']",
        ),
        (
            lambda: BlessOperator(
                task_id="b",
                experiment_fn="m:f",
                model_dir="/m",
                publish_dir="/p",
                metric="loss",
                min_delta=-0.1,
            ),
            "`min_delta`. Received: -0.1",
        ),
        (
            lambda: PublishOperator(task_id="p", model_dir="/m", publish_dir="s3://b/p"),
            "Invalid value for `publish_dir`. Received: 's3://b/p': the scheme 's3://'",
        ),
    ],
)
def test_bad_arguments_fail_at_parse_time(factory, message):
    with pytest.raises(ValueError) as info:
        factory()
    assert message in str(info.value)


def test_templated_values_are_checked_when_rendered_not_at_parse_time():
    operator = TrainOperator(
        task_id="t",
        experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
        model_dir="{{ params.dir }}",
    )
    assert operator.template_fields == (
        "model_dir",
        "tf_config",
        "experiment_id",
        "trial",
        "warm_start_from",
        "publish_dir",
    )


def test_checkpoint_poll_interval_is_the_sensors_default(monkeypatch):
    """`[tfexp] checkpoint_poll_interval` (5 s) is how often a sensor looks unless the task
    says otherwise (it was never read: sensors looked every 60 s, Airflow's default)."""
    assert CheckpointSensor(task_id="s", model_dir="/m").poke_interval == 5
    monkeypatch.setenv("AIRFLOW__TFEXP__CHECKPOINT_POLL_INTERVAL", "2.5")
    assert CheckpointSensor(task_id="s", model_dir="/m").poke_interval == 2.5
    assert CheckpointSensor(task_id="s", model_dir="/m", poke_interval=30).poke_interval == 30
