"""A config's `tuning:` section: every problem at parse time, with its field path."""

from __future__ import annotations

import pytest

from airflow_tfexp.dag_factory import build_experiment_dag
from airflow_tfexp.dag_factory.builder import plan_config
from airflow_tfexp.dag_factory.errors import ExperimentConfigError
from tests.airflow.test_factory_config import GOOD

SPACE = {"learning_rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": True}}


def sweep(tuning=None, **changes):
    return {
        **GOOD,
        "exporters": [{"type": "latest"}],
        "tuning": {"search_space": SPACE, **(tuning or {})},
        **changes,
    }


def problems(config, map_limit=1024):
    with pytest.raises(ExperimentConfigError) as err:
        plan_config(config, "(test)", ["LocalExecutor"], map_limit)
    return err.value.problems


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            sweep(
                {
                    "search_space": {
                        "learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}
                    }
                }
            ),
            "tuning.search_space.learning_rate.low: must be > 0 with log: true",
        ),
        (sweep({"trial": 5}), 'tuning.trial: unknown key; did you mean "trials"?'),
        (sweep({"parallel": 0}), "tuning.parallel: Input should be greater than or equal to 1"),
        (sweep({"sampler": "bayes"}), "tuning.sampler: expected one of ['grid', 'random', 'tpe']"),
        (sweep({"pruner": {"type": "hyperband"}}), "tuning.pruner: expected one of"),
        (sweep({"objective": {"metric": "accuracy", "mode": "up"}}), "tuning.objective.mode"),
        (sweep({"study_storage": "somewhere"}), 'tuning.study_storage: expected "journal"'),
        (sweep({"timeout": "soon"}), "tuning.timeout: expected seconds"),
        (
            sweep(schedule_mode="per_checkpoint"),
            "tuning: each trial trains and evaluates in its own task (schedule_mode local)",
        ),
        (
            sweep(model_dir="gs://bucket/sweep"),
            "tuning.study_storage: the model dir gs://bucket/sweep is on gs://",
        ),
        (
            sweep({"study_storage": "sqlite", "study_conn_id": "db"}),
            "tuning: give study_storage or study_conn_id, not both",
        ),
        (
            sweep(
                {
                    "sampler": "grid",
                    "trials": 9,
                    "search_space": {"u": {"type": "int", "low": 1, "high": 4}},
                }
            ),
            "tuning.trials: the grid has 4 points, so at most 4 trials (got 9)",
        ),
        (
            sweep(params={"learning_rate": {"default": 0.01}}),
            "tuning.search_space: ['learning_rate'] are also run params",
        ),
        (sweep(exporters=[]), "tuning: the sweep exports its best trial; add an exporter"),
        (sweep({"trials": True}), "tuning.trials: Input should be a valid integer"),
        (
            sweep(model_dir="gs://bucket/{{ params.run }}", params={"run": {"default": "a"}}),
            "tuning.study_storage: the model dir gs://bucket/{{ params.run }} is on gs://",
        ),
        (
            sweep(
                {"study_conn_id": "studies"},
                model_dir="/m/{{ params.run }}",
                params={"run": {"default": "a"}},
            ),
            "tuning.study_name: the model dir is templated, so runs may train in different model dirs",
        ),
        (
            sweep(
                {"study_conn_id": "studies", "study_name": "s-{{ dag_run.conf.x }}"},
                model_dir="/m/{{ params.run }}",
                params={"run": {"default": "a"}},
            ),
            "tuning.study_name: the template reads 'dag_run'",
        ),
    ],
)
def test_a_bad_tuning_section_is_an_error_naming_the_field(config, message):
    found = problems(config)
    assert any(message in p for p in found), found


def test_a_templated_study_name_follows_the_templated_model_dir(airflow_db):
    config = sweep(
        {"study_conn_id": "studies", "study_name": "sweep-{{ params.run }}"},
        model_dir="/m/{{ params.run }}",
        params={"run": {"default": "a", "schema": {"type": "string", "pattern": "^[a-z]+$"}}},
    )
    dag = build_experiment_dag(config)
    for task_id in ("suggest_trials", "trial", "complete_trials"):
        task = dag.get_task(task_id)
        assert "study_name" in task.template_fields
        name = task.partial_kwargs["study_name"] if task_id == "trial" else task.study_name
        assert name == "sweep-{{ params.run }}"


def test_parallel_over_max_map_length_is_refused_at_parse_time():
    (problem,) = problems(sweep({"parallel": 9, "trials": 20}), map_limit=8)
    assert problem == (
        "tuning.parallel: a wave's trials are mapped tasks, at most [core] max_map_length (8); "
        "the sweep runs its 20 trials in more waves (got 9)"
    )


def test_a_sweep_dag_has_one_wave_per_run_and_exports_publishes_the_best_trial(airflow_db):
    dag = build_experiment_dag(
        sweep(
            {"trials": 40, "parallel": 5, "study_conn_id": "studies"},
            model_dir="gs://bucket/sweep",
            publish_dir="gs://bucket/published",
            blessing={"metric": "loss"},
        )
    )
    assert dag.max_active_runs == 1
    assert dag.get_task("suggest_trials").n == 5 and dag.get_task("suggest_trials").trials == 40
    trial = dag.get_task("trial")
    assert (
        trial.partial_kwargs["study"]["search_space"]
        == dag.get_task("suggest_trials").study["search_space"]
    )
    assert trial.partial_kwargs["study_conn_id"] == "studies"
    assert dag.get_task("complete_trials").trigger_rule == "all_done"
    assert sorted(t.task_id for t in dag.get_task("next_wave").downstream_list) == [
        "continue_sweep",
        "export_best",
    ]
    for task_id in ("export_best", "bless", "publish"):
        argument = dag.get_task(task_id).trial
        assert (argument.operator.task_id, argument.key) == ("complete_trials", "best_trial")
    upstream = sorted(t.task_id for t in dag.get_task("bless").upstream_list)
    assert upstream == ["complete_trials", "export_best"]  # after the export, with its XCom
