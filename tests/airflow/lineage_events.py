"""OpenLineage events as the provider's file transport wrote them, and their tfexp facets
checked against the schema the package ships."""

from __future__ import annotations

import json
import os
from typing import Any

import jsonschema

import airflow_tfexp.lineage

SCHEMA_FILE = os.path.join(os.path.dirname(airflow_tfexp.lineage.__file__), "facets.schema.json")
FACETS = {
    "tfexp_experiment": "TfexpExperimentJobFacet",
    "tfexp_metrics": "TfexpMetricsRunFacet",
    "tfexp_blessing": "TfexpBlessingRunFacet",
    "tfexp_approval": "TfexpApprovalRunFacet",
}


def file_transport_env(path: str) -> dict[str, str]:
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": path, "append": True}
        )
    }


def read_events(path: str) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def check_tfexp_facets(event: dict[str, Any]) -> None:
    """Every tfexp facet of the event (job and run) matches its definition in the schema."""
    with open(SCHEMA_FILE) as handle:
        defs = json.load(handle)["$defs"]
    facets = {**event["job"].get("facets", {}), **event["run"].get("facets", {})}
    for key, value in facets.items():
        if key in FACETS:
            definition = defs[FACETS[key]]["allOf"][1]
            jsonschema.validate(value, definition)
            assert value["_schemaURL"].endswith("#/$defs/" + FACETS[key])


def completed(events: list[dict[str, Any]], run_id: str, task_id: str) -> dict[str, Any]:
    """The COMPLETE event of one task of one DAG run."""
    found = [
        e
        for e in events
        if e["eventType"] == "COMPLETE"
        and e["job"]["name"].endswith("." + task_id)
        and e["run"]["facets"]["airflow"]["dagRun"]["run_id"] == run_id
    ]
    assert len(found) == 1, (task_id, run_id, [e["job"]["name"] for e in events])
    return found[0]


def datasets(event: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event.get(kind, [])]
