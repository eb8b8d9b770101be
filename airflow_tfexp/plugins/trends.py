"""The trends page of an experiment DAG: every run's final evaluation against its logical date,
the published model re-evaluated by each run's bless step, which runs were blessed, published
or rejected, and the versions in the publish dirs.

Built from the files the run pages read (each run's model dirs, through the same owner and
roots checks) and each publish dir's `LATEST` and version dirs; nothing is computed again.
Runs are found through Airflow's rendered task fields, which it keeps for the most recent
`[core] max_num_rendered_ti_fields_per_task` runs (30 by default) of a templated model dir.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from airflow_tfexp._approval_rules import DECISIONS
from airflow_tfexp.plugins.sweep_view import _number as finite_number

DEFAULT_RUNS = 60
MAX_RUNS = 500
MAX_CHOSEN_METRICS = 8
MAX_VERSIONS = 200


MAX_METRICS = 50


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The plottable metrics of a record: at most MAX_METRICS, names at most 100 characters."""
    found = {}
    for name, value in metrics.items():
        number = finite_number(value)
        if number is not None:
            found[str(name)[:100]] = number
        if len(found) >= MAX_METRICS:
            break
    return found


def _version(value: Any) -> int | None:
    """A published version: a whole number of at most 11 digits (anything else is not shown)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**11:
        return value
    return None


def final_evaluation(data: Any) -> dict[str, Any] | None:
    """The run's last evaluation: the record of the highest global step over its evaluators."""
    best = None
    for evaluator, records in sorted(data.evaluations.items()):
        for record in records:
            if best is None or record["global_step"] > best["global_step"]:
                best = {**record, "evaluator": evaluator}
    if best is None:
        return None
    metrics = {k: v for k, v in best["metrics"].items() if k != "global_step"}
    numbers = _numbers(metrics)
    # named, so a metric that is NaN, infinite or not a number is not silently missing
    not_numbers = [str(k)[:100] for k, v in metrics.items() if finite_number(v) is None]
    final = {"global_step": best["global_step"], "evaluator": best["evaluator"], "metrics": numbers}
    if not_numbers:
        final["not_numbers"] = sorted(not_numbers)[:MAX_METRICS]
    return final


def outcome(blessing: dict | None, lineage: dict | None) -> str:
    """published, blessed (but not published: rejected by a person, or older than LATEST),
    rejected (not blessed), or "" (no bless step)."""
    lineage = lineage or {}
    if isinstance(lineage.get("published"), dict):
        return "published"
    if blessing is None:
        return ""
    return "blessed" if blessing.get("blessed") is True else "rejected"


def trend_row(run: dict[str, Any], datas: list[Any]) -> dict[str, Any]:
    """One run on the trends page, from its model dirs (the first with an evaluation)."""
    row: dict[str, Any] = {
        "run_id": run["run_id"],
        "state": run["state"],
        "date": run.get("logical_date") or run.get("run_after") or None,
        "model_dir": None,
        "final": None,
        "published_model": None,
        "outcome": "",
        "approval": None,
        "published_version": None,
        "problems": [str(p)[:500] for data in datas for p in data.problems][:20],
    }
    for data in datas:
        final = final_evaluation(data)
        if final is None and data.blessing is None:
            continue
        lineage = data.lineage or {}
        approval, problem = checked_approval(lineage.get("approval"))
        if problem:
            row["problems"] = [*row["problems"], f"{data.model_dir}: run.json: {problem}"][:20]
        published = lineage.get("published") if isinstance(lineage.get("published"), dict) else None
        baseline = (data.blessing or {}).get("baseline_metrics")
        row.update(
            model_dir=data.model_dir,
            final=final,
            published_model=_numbers(baseline) if isinstance(baseline, dict) else None,
            outcome=outcome(data.blessing, lineage),
            approval=approval,
            published_version=_version(published.get("version")) if published else None,
        )
        break
    return row


def checked_approval(approval: Any) -> tuple[dict[str, Any] | None, str | None]:
    """run.json's approval section as the trends show it, or why it is not shown: a model dir's
    writers control that file, so the decision is one of DECISIONS and the rest is text."""
    if approval is None:
        return None, None
    if not isinstance(approval, dict) or approval.get("decision") not in DECISIONS:
        decision = approval.get("decision") if isinstance(approval, dict) else approval
        return None, (
            f"approval is not a decision record (decision {str(decision)[:40]!r}; expected one "
            f"of {list(DECISIONS)}); not shown"
        )
    texts = {k: approval.get(k) for k in ("reason", "responded_by")}
    bad = sorted(k for k, v in texts.items() if v is not None and not isinstance(v, str))
    if bad:
        return None, f"approval's {', '.join(bad)} is not text; not shown"
    return {
        "decision": approval["decision"],
        "reason": (texts["reason"] or "")[:300],
        "responded_by": (texts["responded_by"] or "")[:100],
    }, None


def read_versions(publish_dir: str, writers: set[str], max_bytes: int, roots: list[str]) -> dict:
    """A publish dir's numbered versions and what LATEST points at (refused like a model dir
    that is outside the roots or another experiment's)."""
    import json

    from airflow_tfexp.plugins.model_dir_reader import ModelDirReader
    from airflow_tfexp.plugins.run_data import refusal

    found: dict[str, Any] = {"publish_dir": publish_dir, "versions": [], "latest": None}
    try:
        reader = ModelDirReader(publish_dir, max_bytes)
        refused = refusal(reader, writers, roots)
        if refused:
            found["problem"] = refused
            return found
        found["versions"] = version_dirs(reader)[-MAX_VERSIONS:]
        raw = reader.read("LATEST")
        pointer = json.loads(raw) if raw else None
        if isinstance(pointer, dict):
            found["latest"] = {
                "version": _version(pointer.get("version")),
                "run_id": str(pointer.get("run_id") or "")[:250],
                "logical_date": str(pointer.get("logical_date") or "")[:40],
                "metric": str(pointer.get("metric") or "")[:100],
                "value": finite_number(pointer.get("value")),
            }
    except Exception as err:  # noqa: BLE001 - an unreadable publish dir is a problem line
        found["problem"] = f"{publish_dir}: {type(err).__name__}: {err}"
    return found


def version_dirs(reader: Any) -> list[int]:
    """The publish dir's version dirs: names of ASCII digits (a "2.partial" copy, a "²" or a
    link is not a version), in order."""
    import os
    import re

    from airflow_tfexp.experiment.storage.fs import is_gcs

    versions = []
    for name in reader.listdir():
        if not re.fullmatch(r"[0-9]{1,11}", name):
            continue
        if not is_gcs(reader.model_dir):
            path = reader.path(name)
            if os.path.islink(path) or not os.path.isdir(path):
                continue
        versions.append(int(name))
    return sorted(versions)


def read_trends(dag_id: str, limit: int = DEFAULT_RUNS) -> dict[str, Any]:
    """The trends of a DAG's most recent `limit` runs, oldest first, as plain JSON."""
    from airflow_tfexp._config import model_dir_roots, ui_max_file_mb
    from airflow_tfexp.plugins.catalog import run_model_dirs, run_publish_dirs, runs
    from airflow_tfexp.plugins.run_data import read_run_data

    max_bytes, roots = int(ui_max_file_mb() * 2**20), model_dir_roots()
    rows, publish_dirs = [], {}
    for run in reversed(runs(dag_id, limit=max(1, min(limit, MAX_RUNS)))):
        datas = [
            read_run_data(model_dir, writers, max_bytes=max_bytes, roots=roots, summary=True)
            for model_dir, writers in run_model_dirs(dag_id, run["run_id"]).items()
        ]
        rows.append(trend_row(run, datas))
        for publish_dir, writers in run_publish_dirs(dag_id, run["run_id"]).items():
            publish_dirs.setdefault(publish_dir, set()).update(writers)
    metrics = sorted(
        {m for r in rows if r["final"] for m in r["final"]["metrics"]},
        key=lambda n: (n != "loss", n),
    )
    return {
        "dag_id": dag_id,
        "metrics": metrics,
        "runs": rows,
        "publish_dirs": [
            read_versions(d, w, max_bytes, roots) for d, w in sorted(publish_dirs.items())
        ],
    }


def chosen_metrics(available: list[str], asked: str | None) -> list[str]:
    """The metrics to plot: those asked for (comma-separated) that exist, else the first few."""
    if asked:
        wanted = [m.strip() for m in asked.split(",") if m.strip()]
        chosen = [m for m in wanted if m in available]
        if chosen:
            return chosen[:MAX_CHOSEN_METRICS]
    return available[:4]


def _timestamp(date: str | None) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(date)).timestamp()
    except ValueError:
        return None


def _day(seconds: float) -> str:
    when = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return (
        when.strftime("%Y-%m-%d %H:%M") if when.hour or when.minute else when.strftime("%Y-%m-%d")
    )


DAY = 86400.0
COLORS = {
    "final evaluation": "#1f77b4",
    "published model (re-evaluated)": "#ff7f0e",
    "published": "#2ca02c",
    "blessed": "#9467bd",
    "rejected": "#d62728",
}


def day_ticks(xs: list[float], most: int = 6) -> list[float] | None:
    """Midnights (UTC) across the dates, every n days so that at most `most` are labelled;
    None when the runs span less than two days (the chart then labels hours)."""
    if not xs or max(xs) - min(xs) < 2 * DAY:
        return None
    first, last = (x // DAY * DAY for x in (min(xs), max(xs)))
    every = max(1, math.ceil((last - first) / DAY / most))
    count = int((last - first) // (every * DAY)) + 2
    return [first + i * every * DAY for i in range(count)]


def trend_charts(trends: dict[str, Any], metrics: list[str]) -> list[str]:
    """A chart per metric: the final evaluations and the published model over logical dates,
    with the published, blessed and rejected runs marked."""
    from airflow_tfexp.plugins.charts import line_chart

    charts = []
    for metric in metrics:
        series: dict[str, list[tuple[float, float]]] = {
            "final evaluation": [],
            "published model (re-evaluated)": [],
            "published": [],
            "blessed": [],
            "rejected": [],
        }
        for row in trends["runs"]:
            x = _timestamp(row["date"])
            value = finite_number((row["final"] or {}).get("metrics", {}).get(metric))
            if x is None:
                continue
            if value is not None:
                series["final evaluation"].append((x, value))
                if row["outcome"]:
                    series[row["outcome"]].append((x, value))
            baseline = finite_number((row["published_model"] or {}).get(metric))
            if baseline is not None:
                series["published model (re-evaluated)"].append((x, baseline))
        drawn = {name: points for name, points in series.items() if points}
        charts.append(
            line_chart(
                metric,
                drawn,
                "trend-point",
                x_label="logical date",
                x_format=_day,
                markers=("published", "blessed", "rejected"),
                x_ticks=day_ticks([x for points in drawn.values() for x, _ in points]),
                colors=COLORS,
            )
        )
    return charts
