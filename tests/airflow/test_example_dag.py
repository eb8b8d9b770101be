"""The hand-wired example DAG under dag.test(): one evaluation per checkpoint, then export."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.export.export_dirs import list_exports
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.experiment.storage.fs import filesystem, join
from tests.airflow.conftest import load_dag

pytestmark = pytest.mark.slow


def test_per_checkpoint_example_dag_runs_end_to_end(airflow_db, model_dir):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    dag = load_dag("tfexp_digits_per_checkpoint")
    run = dag.test(
        run_conf={"model_dir": model_dir, "train_steps": 400, "save_checkpoints_steps": 100}
    )
    assert run.state == "success"

    steps = [c.global_step for c in list_checkpoints(model_dir)]
    assert steps == [0, 100, 200, 300, 400]
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run.run_id).all()
        evaluations = sorted(ti.map_index for ti in tis if ti.task_id == "evaluate")
        assert evaluations == list(range(len(steps)))  # one task instance per checkpoint
        assert {ti.state for ti in tis} == {"success"}
    evaluated = sorted(r["global_step"] for r in read_results(model_dir, "per_checkpoint"))
    assert evaluated == steps
    (export,) = list_exports(join(model_dir, "export", "latest"))
    assert "saved_model.pb" in filesystem(export).listdir(export)
