"""Every example DAG under dags/ parses and is run by a test: an example that nobody runs
rots while the suite stays green."""

from __future__ import annotations

import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS_A_DAG = re.compile(r"\.test\(|run_example\(|dags test|make demo|scripts/demo\.py")


def example_dag_ids() -> set[str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return set(bag.dag_ids)


def runners_of(dag_id: str) -> list[str]:
    found = []
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name == os.path.basename(__file__):
            continue
        text = path.read_text()
        if re.search(rf"[\"']{dag_id}[\"']", text) and RUNS_A_DAG.search(text):
            found.append(str(path.relative_to(ROOT)))
    return found


def test_every_example_dag_is_run_by_a_test():
    dag_ids = example_dag_ids()
    assert {"tfexp_digits_retraining", "tfexp_digits_factory", "tfexp_digits_sweep"} <= dag_ids
    uncovered = sorted(d for d in dag_ids if not runners_of(d))
    assert not uncovered, f"example DAGs no test runs: {uncovered}"


def test_the_coverage_check_sees_a_dag_no_test_runs():
    assert runners_of("tfexp_digits_retraining")
    assert not runners_of("tfexp_no_such_example")
