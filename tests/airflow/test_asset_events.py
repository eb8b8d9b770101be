"""A run triggered by data assets hands their events to experiment_fn (params) and lineage."""

from __future__ import annotations

import datetime

from airflow.sdk import Asset
from airflow.sdk.api.datamodels._generated import (
    AssetEventDagRunReference,
    AssetReferenceAssetEventDagRun,
)

from airflow_tfexp.names import ASSET_EVENTS_PARAM
from airflow_tfexp.operators import TrainOperator


def reference(uri: str, minute: int, **extra) -> AssetEventDagRunReference:
    return AssetEventDagRunReference(
        asset=AssetReferenceAssetEventDagRun(name=uri, uri=uri, extra={}),
        extra=extra,
        source_task_id="land",
        source_dag_id="ingest",
        source_run_id=f"day-{minute}",
        source_map_index=-1,
        source_aliases=[],
        timestamp=datetime.datetime(2026, 11, 28, 12, minute, tzinfo=datetime.UTC),
    )


def test_the_triggering_asset_events_reach_experiment_fn_params_in_time_order():
    data = Asset(uri="gs://bucket/data/train/")
    context = {
        "params": {"learning_rate": 0.1},
        "triggering_asset_events": {
            data: [reference(data.uri, 5, rows=900), reference(data.uri, 1, rows=1000)]
        },
    }
    operator = TrainOperator(task_id="t", experiment_fn="m:f", model_dir="/m")
    params = operator.experiment_params(context)
    assert params["learning_rate"] == 0.1
    events = params[ASSET_EVENTS_PARAM]
    assert [e["extra"]["rows"] for e in events] == [1000, 900]
    assert events[0] == {
        "uri": "gs://bucket/data/train",
        "extra": {"rows": 1000},
        "timestamp": "2026-11-28 12:01:00+00:00",
        "source_dag_id": "ingest",
        "source_run_id": "day-1",
    }


def test_a_run_without_asset_events_gets_no_extra_param():
    operator = TrainOperator(task_id="t", experiment_fn="m:f", model_dir="/m")
    assert operator.experiment_params({"params": {"a": 1}}) == {"a": 1}
