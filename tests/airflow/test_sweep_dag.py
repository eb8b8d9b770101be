"""The factory's sweep DAG under dag.test(): trials as mapped tasks, pruning, the best exported."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.export.export_dirs import list_exports
from airflow_tfexp.experiment.storage.fs import join
from tests.airflow.conftest import load_dag, task_instances
from tests.airflow.studies import load_rows

pytestmark = pytest.mark.slow


def test_a_12_trial_digits_sweep_prunes_exports_the_best_and_adds_nothing_when_rerun(
    airflow_db, tmp_path
):
    model_dir = str(tmp_path / "sweep")
    dag = load_dag("tfexp_digits_sweep")
    run = dag.test(run_conf={"model_dir": model_dir})
    assert run.state == "success"
    rows = load_rows(dag, model_dir)
    assert [r["number"] for r in rows] == list(range(12))
    states = [r["state"] for r in rows]
    assert "pruned" in states and set(states) <= {"complete", "pruned"}, rows
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert all(r["pruned_at_step"] in (100, 200) for r in pruned), pruned
    complete = [r for r in rows if r["state"] == "complete"]
    best = max(complete, key=lambda r: r["value"])
    # its value is its final evaluation, as the trial's results record it
    final = max(read_results(best["model_dir"], None), key=lambda r: r["global_step"])
    assert final["global_step"] == 300 and best["value"] == final["metrics"]["accuracy"]
    # the best trial, and only it, was exported
    (export,) = list_exports(join(best["model_dir"], "export", "latest"))
    assert export
    others = [r for r in rows if r["number"] != best["number"]]
    assert not any(list_exports(join(r["model_dir"], "export", "latest")) for r in others)
    tis = {ti.task_id: ti for ti in task_instances(dag, run) if ti.task_id != "trial"}
    assert tis["continue_sweep"].state == "skipped" and tis["export_best"].state == "success"
    assert len([ti for ti in task_instances(dag, run) if ti.task_id == "trial"]) == 12

    again = dag.test(run_conf={"model_dir": model_dir})
    assert again.state == "success"
    assert load_rows(dag, model_dir) == rows  # no trial added, none told twice
    assert not [
        ti for ti in task_instances(dag, again) if ti.task_id == "trial" and ti.state == "success"
    ]


def fake_sweep(dag_id: str, model_dir: str, **tuning) -> dict:
    return {
        "dag_id": dag_id,
        "model_dir": model_dir,
        "experiment_fn": "tests.airflow.sweep_experiment:experiment_fn",
        "train_steps": 30,
        "retries": 0,
        "tuning": {
            "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "sampler": "random",
            "pruner": "none",
            "seed": 3,
            **tuning,
        },
    }


def run_every_wave(dag, conf: dict, limit: int = 10) -> list:
    """Run the sweep as the scheduler would: the first run, then each run its continue_sweep
    task triggered (dag.test at its logical date replaces it with a run of the same id)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    runs = [dag.test(run_conf=conf)]
    for _ in range(limit):
        with create_session() as session:
            queued = session.query(DagRun).filter_by(dag_id=dag.dag_id, state="queued").all()
            session.expunge_all()
        if not queued:
            return runs
        (next_run,) = queued  # one at a time: waves follow one another
        assert next_run.conf == conf  # the next wave keeps this sweep's conf
        run = dag.test(
            logical_date=next_run.logical_date,
            run_after=next_run.logical_date,
            run_conf=next_run.conf,
        )
        assert run.run_id == next_run.run_id
        runs.append(run)
    raise AssertionError(f"the sweep did not end in {limit} waves")


def test_a_sweep_wider_than_max_map_length_runs_in_waves(airflow_db, tmp_path, monkeypatch):
    """20 trials, at most 8 mapped tasks: three waves, the study in a database named by an
    Airflow connection (as many workers would share it)."""
    import json

    from airflow.configuration import conf

    from airflow_tfexp.experiment.tuning.study import StudySpec, open_study
    from tests.airflow.test_factory_dags import write_factory_dag

    monkeypatch.setitem(conf._sections.setdefault("core", {}), "max_map_length", "8")
    assert conf.getint("core", "max_map_length") == 8
    database = tmp_path / "studies.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_TFEXP_TEST_STUDIES",
        # the provider's own connection type, as its form in the UI saves it
        json.dumps(
            {"conn_type": "tfexp_study", "host": str(database), "extra": {"dialect": "sqlite"}}
        ),
    )
    model_dir = str(tmp_path / "sweep")
    config = fake_sweep(
        "tfexp_test_waves", model_dir, trials=20, parallel=8, study_conn_id="tfexp_test_studies"
    )
    dag = write_factory_dag(config)
    runs = run_every_wave(dag, {})
    assert database.exists() and not (tmp_path / "sweep" / "study.journal").exists()
    spec = StudySpec.from_value(dag.get_task("suggest_trials").study)
    in_database = open_study(spec, model_dir, f"sqlite:///{database}").get_trials()
    assert len(in_database) == 20
    assert [r.state for r in runs] == ["success"] * 3
    from airflow_tfexp.experiment.tuning.trials import study_rows

    rows = study_rows(open_study(spec, model_dir, f"sqlite:///{database}"), spec, model_dir)
    assert [r["number"] for r in rows] == list(range(20)) and {r["state"] for r in rows} == {
        "complete"
    }
    waves = [[r["number"] for r in rows if r["wave"] == run.run_id] for run in runs]
    assert waves == [list(range(8)), list(range(8, 16)), list(range(16, 20))]
    for run in runs:
        mapped = [ti for ti in task_instances(dag, run) if ti.task_id == "trial"]
        assert len(mapped) <= 8
    last = {ti.task_id: ti.state for ti in task_instances(dag, runs[-1]) if ti.task_id != "trial"}
    assert last["export_best"] == "success" and last["continue_sweep"] == "skipped"
    best = min(rows, key=lambda r: r["value"])
    assert list_exports(join(best["model_dir"], "export", "final"))


def test_a_sweep_blesses_and_publishes_its_best_trial(airflow_db, tmp_path):
    from airflow_tfexp.experiment.retraining.blessing import read_blessing
    from airflow_tfexp.experiment.retraining.publishing import latest_published
    from tests.airflow.test_factory_dags import tiny_config, write_factory_dag

    model_dir, publish_dir = str(tmp_path / "sweep"), str(tmp_path / "published")
    config = tiny_config(
        "local",
        model_dir,
        dag_id="tfexp_test_sweep_publish",
        train_steps=40,
        publish_dir=publish_dir,
        blessing={"metric": "loss", "mode": "min"},
        tuning={
            "search_space": {
                "learning_rate": {"type": "float", "low": 0.001, "high": 0.1, "log": True}
            },
            "trials": 2,
            "parallel": 2,
            "sampler": "random",
            "pruner": "none",
            "seed": 4,
        },
    )
    del config["schedule_mode"], config["evaluation"]
    dag = write_factory_dag(config)
    run = dag.test()
    assert run.state == "success"
    rows = load_rows(dag, model_dir)
    best = min(rows, key=lambda r: r["value"])
    assert read_blessing(best["model_dir"])["blessed"] is True
    published = latest_published(publish_dir)
    assert published["version"] == 1
    assert published["source"].startswith(join(best["model_dir"], "export", "final"))
