"""Run the example retraining DAG once per day under dag.test() in a fresh process, the way a
deployment loads plugins: the OpenLineage provider's listener registers at startup only when a
transport is configured, so a test that reads lineage events starts this with one.

    python -m tests.airflow.retraining_days '[{"logical_date": "2026-11-01", "conf": {...}}]'

Prints one JSON line per run: {"run_id", "state", "logical_date"}.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime


def main(days: list[dict]) -> None:
    from tests.airflow.conftest import load_dag

    dag = load_dag("tfexp_digits_retraining")
    for day in days:
        when = datetime.fromisoformat(day["logical_date"]).replace(tzinfo=UTC)
        run = dag.test(logical_date=when, run_after=when, run_conf=day["conf"])
        print(
            json.dumps(
                {"run_id": run.run_id, "state": str(run.state), "logical_date": when.isoformat()}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
