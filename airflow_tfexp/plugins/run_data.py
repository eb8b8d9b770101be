"""What the Experiments page shows of a model dir, read from the engine's files.

Every part is read on its own: a missing, corrupt, malformed, oversized or unsafe file becomes
a line in `problems` (shown on the page) and the rest is still shown. Records are checked field
by field, so a page never fails on a value (a metric "nan", a null global_step, run.json = 5).
Files are read through `ModelDirReader`: regular files inside the model dir, of bounded size.
A model dir is read only when it is inside `[tfexp] model_dir_roots` and its owner stamp names
an experiment the viewed DAG writes for. No TensorFlow: the API server stays light.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

from airflow_tfexp.plugins.downsample import downsample
from airflow_tfexp.plugins.model_dir_reader import ModelDirReader, UnreadableFile

EVENT_FILE_PREFIX = "events.out.tfevents."


@dataclasses.dataclass
class RunData:
    model_dir: str
    evaluations: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    training: dict[str, list[tuple[int, float]]] = dataclasses.field(default_factory=dict)
    # how many points a training series had before it was downsampled for the chart
    downsampled: dict[str, int] = dataclasses.field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    exports: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    blessing: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    sweep: dict[str, Any] | None = None  # a sweep's trials (sweep_view), in its model dir
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def metric_names(self) -> list[str]:
        names = {
            k
            for records in self.evaluations.values()
            for r in records
            for k in r["metrics"]
            if k != "global_step"
        }
        return sorted(names, key=lambda n: (n != "loss", n))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: NaN and infinities (which JSON lacks) as the strings "NaN", "Infinity"."""
        return json_safe(dataclasses.asdict(self))


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


MAX_STEP = 2**63 - 1  # TensorFlow's int64 global step
MAX_SCALAR_POINTS = 500_000  # training points read per model dir (the page draws 2,000 a series)
MAX_RESULT_RECORDS = 100_000  # evaluation records read per model dir, all evaluators together
MAX_EVALUATORS = 50  # eval_* dirs read per model dir


def _is_number(value: Any) -> bool:
    """A JSON number the page can format and plot (a 400-digit int cannot become a float)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _attempt(data: RunData, what: str, read: Callable[[], None]) -> None:
    try:
        read()
    except UnreadableFile as err:
        data.problems.append(f"{what}: {err}")
    except Exception as err:  # noqa: BLE001 - any unreadable part is reported, not fatal
        data.problems.append(f"{what}: {type(err).__name__}: {err}")


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{where} is not valid JSON ({type(err).__name__}: {err})") from None


def clean_result(record: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    """An evaluation record with the fields the page uses checked: None (with the reason in
    `problems`) when it has no usable global_step; bad metrics or fields dropped and reported."""
    if not isinstance(record, dict):
        problems.append(f"{where}: not an evaluation record (a JSON object), skipped")
        return None
    step = record.get("global_step")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        problems.append(f"{where}: global_step is {step!r}, expected a whole number >= 0; skipped")
        return None
    cleaned = dict(record)
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict):
        problems.append(
            f"{where}: metrics is {type(metrics).__name__}, expected an object; ignored"
        )
        metrics = {}
    bad = sorted(str(k) for k, v in metrics.items() if not _is_number(v))
    if bad:
        problems.append(f"{where}: metric(s) {', '.join(bad)} not a number; ignored")
    cleaned["metrics"] = {str(k): v for k, v in metrics.items() if _is_number(v)}
    for field, valid, expected in (
        ("duration_secs", _is_number, "a number of seconds"),
        ("checkpoint_path", lambda v: isinstance(v, str), "a path"),
    ):
        if field in cleaned and cleaned[field] is not None and not valid(cleaned[field]):
            problems.append(f"{where}: {field} is {cleaned[field]!r}, expected {expected}; ignored")
            cleaned[field] = None
    return cleaned


def refuse_foreign_subdir(reader: ModelDirReader, *parts: str) -> None:
    """UnreadableFile when `model_dir/<parts>` is another experiment's model dir nested in this
    one, so its files are not shown as this run's."""
    from airflow_tfexp.experiment.storage.ownership import OWNER_FILE, parse_owner

    stamp = reader.path(*parts, OWNER_FILE)
    owner = parse_owner(reader.read(*parts, OWNER_FILE), stamp)
    if owner is not None and owner != reader.owner:
        raise UnreadableFile(
            f"{reader.path(*parts)} is the model dir of the experiment {owner!r}: not read"
        )


def _evaluations(data: RunData, reader: ModelDirReader, names: list[str]) -> None:
    from airflow_tfexp.experiment.evaluation.results import RESULTS_FILE
    from airflow_tfexp.experiment.storage.files import iter_jsonl

    directories = sorted(n for n in names if n == "eval" or n.startswith("eval_"))
    if len(directories) > MAX_EVALUATORS:
        data.problems.append(
            f"{len(directories):,} evaluation dirs: the first {MAX_EVALUATORS} read, "
            f"{', '.join(directories[MAX_EVALUATORS:][:5])}, ... not read"
        )
    budget = [MAX_RESULT_RECORDS]
    for directory in directories[:MAX_EVALUATORS]:

        def read_one(directory: str = directory) -> None:
            refuse_foreign_subdir(reader, directory)
            raw = reader.read(directory, RESULTS_FILE)
            if raw is None:
                return
            path = reader.path(directory, RESULTS_FILE)
            records = []
            lines = iter_jsonl(
                raw,
                path,
                data.problems.append,
                limit=budget[0],
                limit_reason=f"the page reads at most {MAX_RESULT_RECORDS:,} evaluation records "
                "per model dir",
            )
            for number, record in lines:
                budget[0] -= 1
                cleaned = clean_result(record, f"{path}: line {number}", data.problems)
                if cleaned is not None:
                    records.append(cleaned)
            evaluator = directory.removeprefix("eval_") if directory != "eval" else "(default)"
            data.evaluations[evaluator] = sorted(records, key=lambda r: r["global_step"])

        _attempt(data, f"evaluation results in {directory}", read_one)


def _training(data: RunData, reader: ModelDirReader, names: list[str]) -> None:
    from airflow_tfexp.plugins.tb_scalars import read_scalars

    series: dict[str, list[tuple[int, float]]] = {}
    budget = [MAX_SCALAR_POINTS]
    for name in sorted(n for n in names if n.startswith(EVENT_FILE_PREFIX)):
        if budget[0] <= 0:
            data.problems.append(
                f"{reader.path(name)}: not read, the page reads at most "
                f"{MAX_SCALAR_POINTS:,} training points per model dir"
            )
            continue

        def read_one(name: str = name) -> None:
            raw = reader.read(name) or b""
            scalars = read_scalars(raw, max_points=budget[0])
            if raw and not scalars:
                data.problems.append(f"{reader.path(name)}: no readable scalar summaries")
            for tag, points in scalars.items():
                series.setdefault(tag, []).extend(points)
                budget[0] -= len(points)
            if budget[0] <= 0:
                data.problems.append(
                    f"{reader.path(name)}: read up to the page's {MAX_SCALAR_POINTS:,} "
                    "training points per model dir; the rest is not shown"
                )

        _attempt(data, "training summaries", read_one)
    for tag, points in series.items():
        points.sort()
        data.training[tag] = downsample(points)
        if len(data.training[tag]) < len(points):
            data.downsampled[tag] = len(points)


def _checkpoints(data: RunData, reader: ModelDirReader, names: list[str]) -> None:
    from airflow_tfexp.experiment.storage.checkpoints import STATE_FILE, checkpoints_from_listing

    raw = reader.read(STATE_FILE) if STATE_FILE in names else None
    state = None if raw is None else raw.decode("utf-8", "replace")
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
        for c in checkpoints_from_listing(data.model_dir, names, state)
    ]


def _exports(data: RunData, reader: ModelDirReader, names: list[str]) -> None:
    from airflow_tfexp.experiment.export.export_dirs import list_exports

    if "export" not in names:
        return
    for exporter in sorted(reader.listdir("export")):

        def read_one(exporter: str = exporter) -> None:
            reader.listdir("export", exporter)  # refuses a link that leaves the model dir
            refuse_foreign_subdir(reader, "export", exporter)
            data.exports[exporter] = list_exports(reader.path("export", exporter))

        _attempt(data, f"exports of {exporter}", read_one)


def _json_file(reader: ModelDirReader, name: str) -> Any:
    raw = reader.read(name)
    return None if raw is None else _parse_json(raw, reader.path(name))


def _blessing(data: RunData, reader: ModelDirReader) -> None:
    record = _json_file(reader, "blessing.json")
    if record is None:
        return
    if not isinstance(record, dict) or not isinstance(record.get("blessed"), bool):
        raise ValueError(
            f"{reader.path('blessing.json')} is not a blessing (an object with a true/false "
            f'"blessed"): {str(record)[:80]!r}'
        )
    data.blessing = {**record, "reason": str(record.get("reason", ""))}


def _lineage(data: RunData, reader: ModelDirReader) -> None:
    record = _json_file(reader, "run.json")
    if record is None:
        return
    if not isinstance(record, dict):
        raise ValueError(
            f"{reader.path('run.json')} is {type(record).__name__}, expected an object"
        )
    lineage = dict(record)
    for key, fields in (("published", ("version", "path")), ("warm_start", ("source",))):
        value = lineage.get(key)
        if value is not None and not (isinstance(value, dict) and all(f in value for f in fields)):
            data.problems.append(
                f"lineage: {key} in {reader.path('run.json')} is {str(value)[:80]!r}, expected "
                f"an object with {', '.join(fields)}; ignored"
            )
            lineage[key] = None
    data.lineage = lineage


def refusal(reader: ModelDirReader, writers: set[str], roots: list[str]) -> str | None:
    """Why the pages will not show this model dir to viewers of a DAG whose tasks write for the
    `writers` experiments (None: they may): outside the roots, or owned by someone else. Sets
    `reader.owner` to the dir's owner."""
    from airflow_tfexp.experiment.storage.confinement import within_roots
    from airflow_tfexp.experiment.storage.ownership import (
        OWNER_FILE,
        enclosing_owner,
        parse_owner,
    )

    model_dir = reader.model_dir
    reader.owner = None
    if roots and not within_roots(model_dir, roots):
        return f"{model_dir} is outside [tfexp] model_dir_roots ({', '.join(roots)}): not shown"
    owner = reader.owner = parse_owner(reader.read(OWNER_FILE), reader.path(OWNER_FILE))
    if owner is None:
        if reader.listdir():
            return (
                f"{model_dir} has no owner stamp ({OWNER_FILE}): not shown. It was written "
                "before airflow-tfexp stamped model dirs; its experiment's next task stamps it."
            )
        return None
    if owner not in writers:
        return (
            f"{model_dir} belongs to the experiment {owner!r}, not to this DAG's "
            f"({', '.join(sorted(writers))}): not shown"
        )
    enclosing = enclosing_owner(model_dir)
    if enclosing is not None and enclosing[1] != owner:
        return (
            f"{model_dir} is inside {enclosing[0]}, the model dir of the experiment "
            f"{enclosing[1]!r}: not shown"
        )
    return None


def read_run_data(
    model_dir: str,
    writers: set[str] | None = None,
    *,
    max_bytes: int = 64 * 2**20,
    roots: list[str] | None = None,
    summary: bool = False,
) -> RunData:
    """Everything the page shows of one model dir; never raises for bad or missing files. With
    `writers` (the experiments the viewed DAG's tasks write for), a dir inside `roots` owned by
    one of them; None skips that check (the engine's own callers). `summary`: only the
    evaluations, the blessing and the lineage (what the trends page needs of every run)."""
    data = RunData(model_dir=model_dir)
    try:
        reader = ModelDirReader(model_dir, max_bytes)
    except (ValueError, OSError) as err:  # a NUL byte, an unresolvable path
        data.problems.append(f"{model_dir!r} cannot be read: {err}")
        return data
    if writers is not None:
        try:
            refused = refusal(reader, writers, roots or [])
        except Exception as err:  # noqa: BLE001 - an unreadable stamp refuses the dir
            refused = f"{model_dir}: {err}"
        if refused:
            data.problems.append(refused)
            return data
    names: list[str] = []

    def listing() -> None:
        names.extend(reader.listdir())
        if not names:
            data.problems.append(f"{model_dir}: empty or missing (nothing trained here yet?)")

    _attempt(data, "listing the model dir", listing)
    _evaluations(data, reader, names)
    if not summary:
        _training(data, reader, names)
        _attempt(data, "checkpoints", lambda: _checkpoints(data, reader, names))
        _attempt(data, "exports", lambda: _exports(data, reader, names))
    _attempt(data, "blessing", lambda: _blessing(data, reader))
    _attempt(data, "lineage", lambda: _lineage(data, reader))
    if not summary:
        _attempt(data, "sweep", lambda: _sweep(data, reader))
    return data


def _sweep(data: RunData, reader: ModelDirReader) -> None:
    from airflow_tfexp.plugins.sweep_view import read_sweep

    data.sweep = read_sweep(reader, data.problems)
