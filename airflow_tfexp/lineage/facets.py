"""The provider's own OpenLineage facets (imported only while lineage is collected).

- job `tfexp_experiment`: which experiment this step belongs to and a hash of its config, so
  a lineage tool can tell when a retraining DAG's definition changed;
- run `tfexp_metrics`: the step's evaluation (metrics, step, evaluator);
- run `tfexp_blessing`: the bless decision and both sides' values;
- run `tfexp_approval`: a person's approval or rejection, with the reason.
"""

from __future__ import annotations

from typing import Any

from attrs import define
from openlineage.client.facet_v2 import JobFacet, RunFacet

# The facets' JSON schema ships with the package (airflow_tfexp/lineage/facets.schema.json);
# no server hosts it, so its id is a URN, not a URL a consumer could fetch.
SCHEMA = "urn:airflow-tfexp:lineage:facets:1#/$defs/"


@define
class TfexpExperimentJobFacet(JobFacet):
    experimentId: str
    experimentFn: str | None
    configHash: str

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA + "TfexpExperimentJobFacet"


@define
class TfexpMetricsRunFacet(RunFacet):
    metrics: dict[str, Any]
    globalStep: int | None = None
    evaluator: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA + "TfexpMetricsRunFacet"


@define
class TfexpBlessingRunFacet(RunFacet):
    blessed: bool
    reason: str
    metric: str | None = None
    candidate: float | None = None
    baseline: float | None = None
    candidateExport: str | None = None
    baselineVersion: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA + "TfexpBlessingRunFacet"


@define
class TfexpApprovalRunFacet(RunFacet):
    decision: str
    reason: str | None = None
    respondedBy: str | None = None
    respondedById: str | None = None
    candidateExport: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA + "TfexpApprovalRunFacet"
