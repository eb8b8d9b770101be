"""The factory's config validation: every malformed config gives a clear, complete error."""

from __future__ import annotations

import ast
import copy
import os
import subprocess
import sys
import textwrap

import pytest

from airflow_tfexp.dag_factory import ExperimentConfigError, build_experiment_dag, parse_spec
from airflow_tfexp.dag_factory.compute import operator_arguments
from airflow_tfexp.dag_factory.plan import compute_to_json

GOOD = {
    "dag_id": "tfexp_good",
    "model_dir": "/tmp/m",
    "model_fn": "tests.experiment.tiny_experiment:model_fn",
    "train_input_fn": "tests.experiment.tiny_experiment:train_input_fn",
    "eval_input_fn": "tests.experiment.tiny_experiment:eval_input_fn",
    "train_steps": 100,
}


def with_changes(**changes):
    config = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is DELETE:
            config.pop(key)
        else:
            config[key] = value
    return config


DELETE = object()
BAD = [
    (with_changes(train_step=100), 'train_step: unknown key; did you mean "train_steps"?'),
    (with_changes(eval_stepz=5), 'eval_stepz: unknown key; did you mean "eval_steps"?'),
    (
        with_changes(train_steps=-5),
        "train_steps: Input should be greater than or equal to 1 (got -5)",
    ),
    (with_changes(train_steps="many"), "train_steps: Input should be a valid integer"),
    (with_changes(eval_steps=0), "eval_steps: Input should be greater than or equal to 1"),
    (
        with_changes(min_eval_frequency=-1),
        "min_eval_frequency: Input should be greater than or equal to 0",
    ),
    (
        with_changes(eval_delay_secs=-10),
        "eval_delay_secs: Input should be greater than or equal to 0",
    ),
    (
        with_changes(continuous_eval_throttle_secs="often"),
        "continuous_eval_throttle_secs: Input should be a valid number",
    ),
    (
        with_changes(delay_workers_by_global_step="sometimes"),
        "delay_workers_by_global_step: Input should be a valid boolean",
    ),
    (
        with_changes(train_steps_per_iteration=0),
        "train_steps_per_iteration: Input should be greater than or equal to 1",
    ),
    (
        with_changes(exporters=[{"type": "bestest"}]),
        "exporters.0.type: Input should be 'latest', 'best' or 'final'",
    ),
    (
        with_changes(exporters=[{"type": "best", "mode": "up"}]),
        "exporters.0.mode: Input should be 'min' or 'max'",
    ),
    (
        with_changes(exporters=[{"type": "latest"}, {"type": "latest"}]),
        "exporters: names must be distinct",
    ),
    (
        with_changes(exporters=[{"type": "latest", "exports_to_keep": 0}]),
        "exporters.0.exports_to_keep",
    ),
    (
        with_changes(compute={"train": {"executor": "MagicExecutor"}}),
        "compute.train.executor: 'MagicExecutor' is not configured",
    ),
    (
        with_changes(compute={"training": {"gpus": 1}}),
        "compute.training: Input should be 'train', 'evaluate' or 'export'",
    ),
    (
        with_changes(compute={"train": {"gpus": -1}}),
        "compute.train.gpus: Input should be greater than or equal to 0",
    ),
    (
        with_changes(compute={"train": {"gpu": 1}}),
        'compute.train.gpu: unknown key; did you mean "gpus"?',
    ),
    (
        with_changes(compute={"train": {"memory": "lots"}}),
        'compute.train.memory: expected a Kubernetes quantity like "4Gi"',
    ),
    (
        with_changes(compute={"export": {"execution_timeout": "soon"}}),
        "compute.export.execution_timeout: expected seconds",
    ),
    (
        with_changes(model_fn="tests.experiment.tiny_experiment.model_fn"),
        "model_fn: Invalid value for `path`",
    ),
    (
        with_changes(model_dir="s3://bucket/m"),
        "model_dir: Invalid value for `model_dir`. Received: 's3://bucket/m': the scheme 's3://' is not supported",
    ),
    (with_changes(schedule="0 25 * * *"), "schedule: not a valid cron expression"),
    (with_changes(schedule="@fortnightly"), "schedule: unknown preset"),
    (
        with_changes(schedule_mode="distributed"),
        "schedule_mode: Input should be 'train_and_evaluate', 'per_checkpoint', 'local' or "
        "'event_driven'",
    ),
    (with_changes(dag_id="my dag!"), "dag_id: String should match pattern"),
    (with_changes(dag_id=DELETE), "dag_id: required"),
    (with_changes(eval_input_fn=DELETE), "missing ['eval_input_fn']"),
    (
        with_changes(experiment_fn="tests.experiment.tiny_experiment:experiment_fn"),
        "give either experiment_fn or model_fn",
    ),
    (
        with_changes(run_config={"save_checkpoints_steps": 10, "save_checkpoints_secs": 10}),
        "not both",
    ),
    (
        with_changes(run_config={"keep_checkpoints": 3}),
        'run_config.keep_checkpoints: unknown key; did you mean "keep_checkpoint_max"?',
    ),
    (
        with_changes(evaluation={"wait": "sleep"}),
        "evaluation.wait: Input should be 'defer' or 'reschedule'",
    ),
    (with_changes(retries=-1), "retries: Input should be greater than or equal to 0"),
    (with_changes(schedule={"assets": []}), "schedule: assets: List should have at least 1 item"),
    (
        with_changes(schedule={"assets": ["train-data"]}),
        'schedule: assets: expected asset URIs like "gs://bucket/data/"',
    ),
    (with_changes(schedule=["@daily"]), "schedule: expected null, a cron expression"),
    (
        with_changes(warm_start_from="latest_blessed"),
        'warm_start_from: "latest_blessed" needs publish_dir',
    ),
    (
        with_changes(warm_start_from="hdfs://nn/m"),
        'warm_start_from: expected "latest_blessed", "none", or a checkpoint',
    ),
    (
        with_changes(publish_dir="/p", blessing={"metric": "loss", "mode": "lower"}),
        "blessing.mode: Input should be 'min' or 'max'",
    ),
    (with_changes(blessing={"metric": "loss"}), "blessing: needs publish_dir"),
    (
        with_changes(publish_dir="/p"),
        "publish_dir: publishing needs an export; add an exporter",
    ),
    (
        with_changes(
            publish_dir="/p",
            exporters=[{"type": "latest"}, {"type": "best"}],
            blessing={"exporter": "final"},
        ),
        "blessing.exporter: 'final' is not an exporter (one of ['latest', 'best'])",
    ),
    (
        with_changes(distribution={"strategy": "multi_worker_mirrored", "num_workers": 0}),
        "distribution: Invalid value for `distribution.num_workers`. Received: 0",
    ),
    (
        with_changes(distribution={"strategy": "multi_worker_mirrored", "num_workers": 2}),
        "distribution: `distribution.strategy: multi_worker_mirrored` needs `launcher: ray`",
    ),
    (
        with_changes(distribution={"strategy": "mirrored", "launcher": "ray", "num_ps": 1}),
        "distribution: `distribution.num_ps` is for strategy parameter_server only",
    ),
    (
        with_changes(schedule_mode="event_driven", model_dir="/m/{{ run_id }}"),
        "model_dir: event_driven mode watches one model dir for checkpoints, so it cannot be templated",
    ),
    (["not", "a", "mapping"], "expected a mapping of settings, got list"),
]


@pytest.mark.parametrize(("config", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_each_malformed_config_names_the_field_the_value_and_what_is_allowed(config, message):
    with pytest.raises(ExperimentConfigError) as info:
        build_experiment_dag(config, source="bad.yaml")
    assert message in str(info.value), str(info.value)
    assert str(info.value).startswith("Invalid experiment config bad.yaml:")


def test_all_problems_of_a_config_are_reported_at_once():
    config = with_changes(train_step=1, eval_steps=0, model_dir="hdfs://x/y", schedule="61 * * * *")
    with pytest.raises(ExperimentConfigError) as info:
        parse_spec(config, "many.yaml")
    fields = [p.split(":")[0] for p in info.value.problems]
    assert sorted(fields) == ["eval_steps", "model_dir", "schedule", "train_step"]


def test_a_good_config_is_a_frozen_spec_with_the_seeds_defaults():
    spec = parse_spec(GOOD)
    assert spec.experiment_arguments() == {
        "train_steps": 100,
        "eval_steps": 100,
        "min_eval_frequency": None,
        "eval_delay_secs": 0,
        "continuous_eval_throttle_secs": 60,
        "delay_workers_by_global_step": False,
        "train_steps_per_iteration": None,
        "checkpoint_and_export": False,
    }
    with pytest.raises(Exception, match="frozen"):
        spec.train_steps = 5
    assert parse_spec({**GOOD, "schedule": "6h"}).schedule.total_seconds() == 6 * 3600


def test_compute_sets_queue_pool_timeout_and_a_kubernetes_pod_override():
    spec = parse_spec(
        {
            **GOOD,
            "compute": {
                "train": {
                    "executor": "KubernetesExecutor",
                    "gpus": 2,
                    "memory": "16Gi",
                    "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "execution_timeout": "2h",
                },
                "evaluate": {"queue": "gpu", "pool": "gpu_pool"},
            },
        }
    )
    train = operator_arguments(compute_to_json(spec.compute["train"]))
    pod = train["executor_config"]["pod_override"]
    (container,) = pod.spec.containers
    assert container.name == "base"
    assert container.resources.limits == {"nvidia.com/gpu": "2", "memory": "16Gi"}
    assert pod.spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod.spec.tolerations[0].to_dict() == {
        "key": "nvidia.com/gpu",
        "operator": "Exists",
        "effect": "NoSchedule",
        "toleration_seconds": None,
        "value": None,
    }
    assert (
        train["executor"] == "KubernetesExecutor"
        and train["execution_timeout"].total_seconds() == 7200
    )
    assert operator_arguments(compute_to_json(spec.compute["evaluate"])) == {
        "queue": "gpu",
        "pool": "gpu_pool",
    }


def test_sensors_stay_off_gpu_workers_and_gpu_stages_get_their_queue(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW__CORE__EXECUTOR", "LocalExecutor,airflow.providers.edge3.executors.EdgeExecutor"
    )
    compute = {"executor": "EdgeExecutor", "queue": "gpu", "gpus": 1}
    dag = build_experiment_dag(
        with_changes(
            schedule_mode="per_checkpoint",
            compute={s: compute for s in ("train", "evaluate", "export")},
        )
    )
    for task_id in ("train", "evaluate", "export"):
        task = dag.get_task(task_id)
        assert (task.executor, task.queue) == ("EdgeExecutor", "gpu")
    sensor = dag.get_task("wait_for_checkpoints")
    assert sensor.executor is None and sensor.queue != "gpu" and sensor.deferrable


def write_dag_folder(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(textwrap.dedent(text))


def test_bad_configs_are_import_errors_that_hide_no_other_dag(tmp_path):
    """As the DAG processor sees them: one import error per broken file, the rest load."""
    import yaml

    one_liner = "from airflow_tfexp.dag_factory import load_experiment_dag\ndag = load_experiment_dag(__file__[:-3] + '.yaml')\n"
    files = {"good.py": one_liner, "good.yaml": yaml.safe_dump(GOOD)}
    for index, (config, _) in enumerate(BAD):
        files[f"bad_{index:02d}.py"] = one_liner
        files[f"bad_{index:02d}.yaml"] = yaml.safe_dump(config)
    files["python_tag.py"] = one_liner
    files["python_tag.yaml"] = "dag_id: !!python/object/apply:os.system ['echo pwned']\n"
    write_dag_folder(tmp_path / "dags", files)
    code = textwrap.dedent(f"""
        import json
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(tmp_path / "dags")!r})
        print(json.dumps({{"dags": sorted(bag.dag_ids), "errors": {{k.rsplit("/", 1)[-1]: v for k, v in bag.import_errors.items()}}}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["dags"] == ["tfexp_good"]
    assert len(result["errors"]) == len(BAD) + 1
    for index, (_, message) in enumerate(BAD):
        assert message in result["errors"][f"bad_{index:02d}.py"]
    assert "not valid (safe) YAML" in result["errors"]["python_tag.py"]
    assert not os.path.exists("pwned")


def test_parsing_a_factory_dag_imports_no_tensorflow_keras_or_google_client():
    code = textwrap.dedent(f"""
        import sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={os.path.join(os.path.dirname(__file__), "..", "..", "dags", "tfexp_factory.py")!r})
        assert "tfexp_digits_factory" in bag.dag_ids, bag.import_errors
        print(sorted(m for m in ("tensorflow", "keras", "google.cloud.storage", "kubernetes") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_an_unchanged_config_is_built_from_its_cached_plan_without_validation(tmp_path):
    """The second parse of the same YAML skips YAML and pydantic; any change is a miss."""
    import yaml

    config_path = tmp_path / "exp.yaml"
    config_path.write_text(yaml.safe_dump(GOOD))
    code = textwrap.dedent(f"""
        import sys
        from airflow_tfexp.dag_factory import load_experiment_dag
        dag = load_experiment_dag({str(config_path)!r})
        print(dag.dag_id, sorted(dag.task_ids), "airflow_tfexp.dag_factory.spec" in sys.modules)
    """)
    env = dict(os.environ, TFEXP_FACTORY_CACHE=str(tmp_path / "cache"))

    def parse():
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    expected = "tfexp_good ['continuous_eval', 'export', 'train']"
    assert parse() == f"{expected} True"  # first parse: validated
    assert parse() == f"{expected} False"  # cached plan: no pydantic import at all
    config_path.write_text(yaml.safe_dump({**GOOD, "train_stepz": 5}))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert (
        'train_stepz: unknown key; did you mean "train_steps"?' in out.stderr
    )  # a change is validated
    env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
    config_path.write_text(
        yaml.safe_dump({**GOOD, "compute": {"train": {"executor": "LocalExecutor"}}})
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert "'LocalExecutor' is not configured" in out.stderr


def test_the_plan_cache_key_covers_every_module_validation_and_planning_load():
    """A module validation imports but the key ignores would let an upgrade reuse stale plans."""
    from airflow_tfexp.dag_factory.cache import PLAN_MODULES, module_file

    config = {
        **GOOD,
        "schedule_mode": "event_driven",
        "distribution": {"strategy": "multi_worker_mirrored", "num_workers": 2, "launcher": "ray"},
        "warm_start_from": "latest_blessed",
        "publish_dir": "gs://bucket/published",
        "exporters": [{"type": "latest"}],
        "blessing": {"metric": "accuracy", "mode": "max"},
        "compute": {"train": {"gpus": 1, "queue": "gpu"}},
    }
    sweep = {
        **GOOD,
        "exporters": [{"type": "latest"}],
        "tuning": {"search_space": {"units": {"type": "int", "low": 8, "high": 64}}},
    }
    code = textwrap.dedent(f"""
        import sys
        from airflow_tfexp.dag_factory.builder import plan_config
        plan_config({config!r}, "(test)", ["LocalExecutor"], 1024)
        plan_config({sweep!r}, "(test)", ["LocalExecutor"], 1024)
        print(sorted(
            name for name, module in sys.modules.items()
            if name.startswith("airflow_tfexp") and not name.startswith("airflow_tfexp.dag_factory.builder")
            and not getattr(module, "__path__", None)
        ))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert "airflow_tfexp.launchers.spec" in loaded  # the config reached every validator
    assert loaded - set(PLAN_MODULES) == set()
    assert all(os.path.isfile(module_file(name)) for name in PLAN_MODULES)
