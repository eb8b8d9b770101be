"""What one experiment step read and wrote (`StepLineage`, plain data the operator records
while it runs), and its OpenLineage form (`operator_lineage`, built when the OpenLineage
provider asks: the client is imported here only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.lineage.naming import dataset_name


@dataclasses.dataclass
class StepLineage:
    """Inputs and outputs as paths or asset URIs (an output may carry a version), the job's
    identity, and what the step decided or measured."""

    experiment_id: str
    experiment_fn: str | None
    config_hash: str
    inputs: list[str] = dataclasses.field(default_factory=list)
    outputs: list[str] = dataclasses.field(default_factory=list)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)  # output -> version
    metrics: Mapping[str, Any] | None = None
    global_step: int | None = None
    evaluator: str | None = None
    blessing: Mapping[str, Any] | None = None
    approval: Mapping[str, Any] | None = None

    def add_inputs(self, *locations: Any) -> None:
        self.inputs += [str(x) for x in locations if x and str(x) not in self.inputs]

    def add_outputs(self, *locations: Any) -> None:
        self.outputs += [str(x) for x in locations if x and str(x) not in self.outputs]


def operator_lineage(step: StepLineage) -> Any:
    """The OpenLineage provider's `OperatorLineage` of a step."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    from airflow_tfexp.lineage import facets

    inputs = [InputDataset(*name) for name in _distinct(step.inputs)]
    outputs, named = [], set()
    for location in step.outputs:
        if dataset_name(location) in named:  # e.g. an outlet asset naming the publish dir
            continue
        named.add(dataset_name(location))
        dataset_facets = {}
        if location in step.versions:
            dataset_facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(step.versions[location])
            )
        outputs.append(OutputDataset(*dataset_name(location), facets=dataset_facets))
    run_facets: dict[str, Any] = {}
    if step.metrics is not None:
        run_facets["tfexp_metrics"] = facets.TfexpMetricsRunFacet(
            metrics=dict(step.metrics), globalStep=step.global_step, evaluator=step.evaluator
        )
    if step.blessing is not None:
        run_facets["tfexp_blessing"] = _blessing_facet(step.blessing)
    if step.approval is not None:
        run_facets["tfexp_approval"] = facets.TfexpApprovalRunFacet(
            decision=str(step.approval.get("decision")),
            reason=step.approval.get("reason"),
            respondedBy=step.approval.get("responded_by"),
            respondedById=step.approval.get("responded_by_id"),
            candidateExport=step.approval.get("candidate_export"),
        )
    job_facets = {
        "tfexp_experiment": facets.TfexpExperimentJobFacet(
            experimentId=step.experiment_id,
            experimentFn=step.experiment_fn,
            configHash=step.config_hash,
        )
    }
    return OperatorLineage(
        inputs=inputs, outputs=outputs, run_facets=run_facets, job_facets=job_facets
    )


def _distinct(locations: list[str]) -> list[tuple[str, str]]:
    """The dataset names of these locations, each once, in order."""
    return list(dict.fromkeys(dataset_name(x) for x in locations))


def _blessing_facet(record: Mapping[str, Any]) -> Any:
    from airflow_tfexp.lineage.facets import TfexpBlessingRunFacet

    def number(value: Any) -> float | None:
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    return TfexpBlessingRunFacet(
        blessed=bool(record.get("blessed")),
        reason=str(record.get("reason", "")),
        metric=record.get("metric"),
        candidate=number(record.get("candidate")),
        baseline=number(record.get("baseline")),
        candidateExport=record.get("candidate_export"),
        baselineVersion=None
        if record.get("baseline_version") is None
        else str(record["baseline_version"]),
    )
