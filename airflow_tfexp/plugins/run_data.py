"""What the Experiments page shows of a model dir, read from the engine's files.

Every part is read on its own: a missing or corrupt file becomes a line in `problems` (shown
on the page) and the rest is still shown. Reads go through the engine's file layer, so local
and gs:// model dirs work alike. No TensorFlow: the API server stays light.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from airflow_tfexp.experiment.storage.fs import filesystem, join

EVENT_FILE_PREFIX = "events.out.tfevents."


@dataclasses.dataclass
class RunData:
    model_dir: str
    evaluations: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    training: dict[str, list[tuple[int, float]]] = dataclasses.field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    exports: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    blessing: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def metric_names(self) -> list[str]:
        names = {
            k
            for records in self.evaluations.values()
            for r in records
            for k, v in r.get("metrics", {}).items()
            if isinstance(v, int | float) and k != "global_step"
        }
        return sorted(names, key=lambda n: (n != "loss", n))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _attempt(data: RunData, what: str, read: Callable[[], None]) -> None:
    try:
        read()
    except Exception as err:  # noqa: BLE001 - any unreadable part is reported, not fatal
        data.problems.append(f"{what}: {type(err).__name__}: {err}")


def _evaluations(data: RunData, names: list[str]) -> None:
    from airflow_tfexp.experiment.evaluation.results import RESULTS_FILE

    for directory in sorted(n for n in names if n == "eval" or n.startswith("eval_")):
        path = join(data.model_dir, directory, RESULTS_FILE)
        raw = filesystem(path).read_bytes(path)
        if raw is None:
            continue
        evaluator = directory.removeprefix("eval_") if directory != "eval" else "(default)"
        records = []
        for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "global_step" not in record:
                    raise ValueError("not an evaluation record")
                records.append(record)
            except ValueError as err:
                data.problems.append(f"{path}: line {number} is not a valid result ({err})")
        data.evaluations[evaluator] = sorted(records, key=lambda r: r["global_step"])


def _training(data: RunData, names: list[str]) -> None:
    from airflow_tfexp.plugins.tb_scalars import read_scalars

    for name in sorted(n for n in names if n.startswith(EVENT_FILE_PREFIX)):
        path = join(data.model_dir, name)
        raw = filesystem(path).read_bytes(path) or b""
        scalars = read_scalars(raw)
        if raw and not scalars:
            data.problems.append(f"{path}: no readable scalar summaries")
        for tag, points in scalars.items():
            data.training.setdefault(tag, []).extend(points)
    for points in data.training.values():
        points.sort()


def _checkpoints(data: RunData) -> None:
    from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints

    evaluated: dict[int, list[str]] = {}
    for evaluator, records in data.evaluations.items():
        for record in records:
            evaluated.setdefault(record["global_step"], []).append(evaluator)
    data.checkpoints = [
        {
            "global_step": c.global_step,
            "checkpoint_path": c.checkpoint_path,
            "evaluated_by": evaluated.get(c.global_step, []),
        }
        for c in list_checkpoints(data.model_dir)
    ]


def _exports(data: RunData, names: list[str]) -> None:
    from airflow_tfexp.experiment.export.export_dirs import list_exports

    if "export" not in names:
        return
    base = join(data.model_dir, "export")
    for exporter in sorted(filesystem(base).listdir(base)):
        data.exports[exporter] = list_exports(join(base, exporter))


def _json_file(data: RunData, name: str) -> Any:
    path = join(data.model_dir, name)
    raw = filesystem(path).read_bytes(path)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def read_run_data(model_dir: str) -> RunData:
    """Everything the page shows of one model dir; never raises for bad or missing files."""
    data = RunData(model_dir=model_dir)
    names: list[str] = []

    def listing() -> None:
        names.extend(filesystem(model_dir).listdir(model_dir))
        if not names:
            data.problems.append(f"{model_dir}: empty or missing (nothing trained here yet?)")

    _attempt(data, "listing the model dir", listing)
    _attempt(data, "evaluation results", lambda: _evaluations(data, names))
    _attempt(data, "training summaries", lambda: _training(data, names))
    _attempt(data, "checkpoints", lambda: _checkpoints(data))
    _attempt(data, "exports", lambda: _exports(data, names))

    def blessing() -> None:
        data.blessing = _json_file(data, "blessing.json")

    def lineage() -> None:
        data.lineage = _json_file(data, "run.json")

    _attempt(data, "blessing", blessing)
    _attempt(data, "lineage", lineage)
    return data
