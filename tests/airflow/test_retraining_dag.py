"""Three days of retraining with the example DAG under dag.test(), on a local dir and on GCS:
day 1 is published (nothing to beat), day 2 trains on bad data and is not, day 3 is better and
replaces it. Checked from publish_dir/LATEST, the blessing records, the lineage files and the
OpenLineage events the provider's file transport wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from airflow_tfexp.experiment.retraining.lineage import read_lineage
from airflow_tfexp.experiment.retraining.publishing import latest_published, published_versions
from airflow_tfexp.experiment.storage.fs import filesystem, join
from tests.airflow.conftest import load_dag, task_instances
from tests.airflow.lineage_events import (
    check_tfexp_facets,
    completed,
    datasets,
    file_transport_env,
    read_events,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow

DAYS = [
    ("clean data", {"train_steps": 300, "seed": 1, "label_noise": 0.0}),
    ("60% of the labels wrong", {"train_steps": 300, "seed": 2, "label_noise": 0.6}),
    ("clean data", {"train_steps": 300, "seed": 3, "label_noise": 0.0}),
]
LOGICAL_DATES = ["2026-11-01", "2026-11-02", "2026-11-03"]


def run_days(model_dir: str, lineage_file: str) -> list[SimpleNamespace]:
    """The three days, each a dag.test() run at its logical date, in a process that loads the
    OpenLineage provider with a file transport (as a deployment configured for lineage would)."""
    days = [{"logical_date": d, "conf": c} for d, (_, c) in zip(LOGICAL_DATES, DAYS, strict=True)]
    out = subprocess.run(
        [sys.executable, "-m", "tests.airflow.retraining_days", json.dumps(days)],
        env={**os.environ, "TFEXP_EXAMPLES_ROOT": model_dir, **file_transport_env(lineage_file)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"run_id"')]
    return [SimpleNamespace(**run) for run in runs]


def test_three_days_of_retraining_publish_only_better_models(
    airflow_db, model_dir, monkeypatch, tmp_path
):
    monkeypatch.setenv("TFEXP_EXAMPLES_ROOT", model_dir)
    dag = load_dag("tfexp_digits_retraining")
    root = join(model_dir, "retraining")
    publish_dir = join(root, "published")
    lineage_file = str(tmp_path / "openlineage.jsonl")
    runs = run_days(model_dir, lineage_file)
    assert [run.state for run in runs] == ["success"] * 3
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
    check_openlineage_events(read_events(lineage_file), runs, decisions, root, publish_dir)


def check_openlineage_events(events, runs, decisions, root, publish_dir):
    """Each step's COMPLETE event names what it read and wrote by the OpenLineage naming spec
    (gs://bucket + object path, or file + absolute path) and carries the experiment's facets."""
    from airflow_tfexp.lineage.naming import dataset_name

    for event in events:
        check_tfexp_facets(event)
    hashes = set()
    for day, (run, decision) in enumerate(zip(runs, decisions, strict=True)):
        model_dir = join(root, "runs", run.run_id)
        train = completed(events, run.run_id, "train")
        assert datasets(train, "outputs") == [dataset_name(model_dir)]
        # days 2 and 3 warm started from version 1: an input of their training
        warm = [dataset_name(join(publish_dir, "1"))] if day else []
        assert datasets(train, "inputs") == warm
        export = completed(events, run.run_id, "export")
        assert datasets(export, "inputs") == [dataset_name(model_dir)]
        namespace, name = dataset_name(model_dir)
        exports = datasets(export, "outputs")
        assert len(exports) == 2  # the latest and the best exporter's
        assert all(ns == namespace and n.startswith(name + "/export/") for ns, n in exports)
        bless = completed(events, run.run_id, "bless")
        facet = bless["run"]["facets"]["tfexp_blessing"]
        assert facet["blessed"] is decision["blessed"]
        assert facet["candidate"] == pytest.approx(decision["candidate"])
        assert facet["reason"] == decision["reason"]
        assert datasets(bless, "inputs")[0] == dataset_name(decision["candidate_export"])
        for task in (train, export, bless):
            hashes.add(task["job"]["facets"]["tfexp_experiment"]["configHash"])
            assert task["job"]["facets"]["tfexp_experiment"]["experimentId"] == (
                "tfexp_digits_retraining"
            )
    published = [completed(events, runs[d].run_id, "publish") for d in (0, 2)]
    for event in published:  # publish builds no Experiment: its DAG's experiment is reported
        hashes.add(event["job"]["facets"]["tfexp_experiment"]["configHash"])
        assert event["job"]["facets"]["tfexp_experiment"]["experimentFn"] == (
            "airflow_tfexp.examples.digits:experiment_fn"
        )
    assert len(hashes) == 1  # one DAG definition: one config hash, whatever each run's conf
    for version, event in enumerate(published, start=1):
        (output,) = event["outputs"]
        assert (output["namespace"], output["name"]) == dataset_name(publish_dir)
        assert output["facets"]["version"]["datasetVersion"] == str(version)
    namespace = dataset_name(publish_dir)[0]
    assert namespace == ("file" if not publish_dir.startswith("gs://") else "gs://tfexp-test")


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
