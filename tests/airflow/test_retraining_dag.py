"""Three days of retraining with the example DAG under dag.test(), on a local dir and on GCS:
day 1 is published (nothing to beat), day 2 trains on bad data and is not, day 3 is better and
replaces it. Checked from publish_dir/LATEST, the blessing records and the lineage files."""

from __future__ import annotations

import json

import pytest

from airflow_tfexp.experiment.retraining.lineage import read_lineage
from airflow_tfexp.experiment.retraining.publishing import latest_published, published_versions
from airflow_tfexp.experiment.storage.fs import filesystem, join
from tests.airflow.conftest import load_dag, task_instances

pytestmark = pytest.mark.slow

DAYS = [
    ("clean data", {"train_steps": 300, "seed": 1, "label_noise": 0.0}),
    ("60% of the labels wrong", {"train_steps": 300, "seed": 2, "label_noise": 0.6}),
    ("clean data", {"train_steps": 300, "seed": 3, "label_noise": 0.0}),
]


def test_three_days_of_retraining_publish_only_better_models(airflow_db, model_dir, monkeypatch):
    monkeypatch.setenv("TFEXP_EXAMPLES_ROOT", model_dir)
    dag = load_dag("tfexp_digits_retraining")
    root = join(model_dir, "retraining")
    publish_dir = join(root, "published")
    runs = []
    for _, conf in DAYS:
        run = dag.test(run_conf=conf)
        assert run.state == "success"
        runs.append(run)
    lineages = [read_lineage(join(root, "runs", run.run_id)) for run in runs]
    decisions = [lineage["blessing"] for lineage in lineages]
    for (data, _), decision, lineage in zip(DAYS, decisions, lineages, strict=True):
        print(  # the publish decisions, for the note
            f"{data}: blessed={decision['blessed']} loss={decision['candidate']:.4f} "
            f"baseline={decision['baseline']} ({decision['reason']}); "
            f"published={lineage['published'] and lineage['published']['version']}"
        )

    # Day 1: nothing to compare with; blessed on the threshold and published as version 1.
    assert decisions[0]["blessed"] is True and decisions[0]["baseline"] is None
    assert lineages[0]["published"]["version"] == 1
    assert lineages[0]["warm_start"] == {"requested": "latest_blessed", "source": None}
    # Day 2: warm started from version 1, trained on bad labels: worse than version 1 (the
    # comparison, not the threshold, rejects it), not published.
    assert lineages[1]["warm_start"]["source"] == join(publish_dir, "1")
    assert decisions[1]["blessed"] is False
    assert decisions[1]["candidate"] > decisions[1]["baseline"]
    assert "is not lower than the baseline" in decisions[1]["reason"]
    assert lineages[1]["published"] is None
    states = {ti.task_id: ti.state for ti in task_instances(dag, runs[1])}
    assert states == {
        "train": "success",
        "export": "success",
        "bless": "success",
        "publish": "skipped",
    }
    # Day 3: warm started from version 1 again (day 2 was never blessed), better: version 2.
    assert lineages[2]["warm_start"]["source"] == join(publish_dir, "1")
    assert decisions[2]["blessed"] is True
    assert decisions[2]["candidate"] < decisions[2]["baseline"]
    # The baseline was re-evaluated, not copied: day 3's baseline is day 1's model, measured
    # again on the same data, so it equals day 1's own candidate value.
    assert decisions[2]["baseline"] == pytest.approx(decisions[0]["candidate"], rel=1e-5)
    assert decisions[1]["baseline"] == pytest.approx(decisions[0]["candidate"], rel=1e-5)

    pointer = latest_published(publish_dir)
    assert pointer["version"] == 2
    assert pointer["source"] == decisions[2]["candidate_export"]
    assert pointer["run_id"] == runs[2].run_id
    assert published_versions(publish_dir) == [1, 2]
    assert lineages[2]["published"]["path"] == join(publish_dir, "2")
    # The lineage holds the run's params and its checkpoint evaluations.
    assert lineages[1]["params"]["label_noise"] == 0.6
    assert lineages[2]["evaluations"]["candidate"]["loss"] == decisions[2]["candidate"]
    raw = filesystem(root).read_bytes(join(root, "runs", runs[2].run_id, "run.json"))
    assert json.loads(raw)["run_id"] == runs[2].run_id
    # Each publish emitted an event on the publish_dir asset (a deploy DAG can schedule on it).
    assert [e["version"] for e in publish_events(publish_dir)] == [1, 2]


def publish_events(publish_dir: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_tfexp.operators.retraining import publish_asset

    uri = publish_asset(publish_dir).uri
    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
        return [dict(e.extra) for e in rows]


def test_a_retried_bless_returns_the_recorded_decision(airflow_db, tmp_path, monkeypatch):
    """Rerunning the bless and publish tasks of a finished run changes nothing."""
    monkeypatch.setenv("TFEXP_EXAMPLES_ROOT", str(tmp_path))
    dag = load_dag("tfexp_digits_retraining")
    run = dag.test(run_conf={"train_steps": 200})
    assert run.state == "success"
    publish_dir = str(tmp_path / "retraining" / "published")
    before = latest_published(publish_dir)
    model_dir = str(tmp_path / "retraining" / "runs" / run.run_id)
    blessing_before = read_lineage(model_dir)["blessing"]

    from airflow_tfexp.operators import BlessOperator, PublishOperator

    bless = dag.get_task("bless")
    again = BlessOperator(
        task_id="bless_again",
        experiment_fn=bless.experiment_fn,
        model_dir=model_dir,
        publish_dir=publish_dir,
        exporter_name="latest",
        metric="loss",
        experiment_id=dag.dag_id,  # built outside the DAG: of the same experiment
    )
    assert again.execute({"params": {}}) == blessing_before
    pointer = PublishOperator(
        task_id="publish_again",
        model_dir=model_dir,
        publish_dir=publish_dir,
        outlets=[],
        experiment_id=dag.dag_id,
    ).execute({"dag_run": None})
    assert pointer["version"] == before["version"] == 1
    assert published_versions(publish_dir) == [1]
