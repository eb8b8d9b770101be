"""A sweep's table and chart on the run page, from the snapshot its tasks write (`sweep.json`).

The snapshot is checked field by field like every file the pages read: a bad row is dropped
and reported, a value that is not a number is not plotted, and a wave that is not a run id of
plain characters gets no link.
"""

from __future__ import annotations

import math
import re
from typing import Any

from airflow_tfexp.plugins.model_dir_reader import ModelDirReader

SWEEP_FILE = "sweep.json"  # the engine's name (experiment.tuning.snapshot), without importing it
MAX_TRIALS = 5000  # rows read from a snapshot
MAX_PARAMS = 20  # param columns of the table (a sweep searches a few; a hostile file, any)
MAX_NUMBER = 2**53  # a trial number or step the page shows (JSON allows any digits)
STATES = ("running", "waiting", "complete", "pruned", "fail")
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:+\-]{1,250}$")


def _number(value: Any) -> float | None:
    """A finite value the page can format and plot, else None (a 400-digit int cannot)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_NUMBER:
        return value
    return None


def _param(value: Any) -> Any:
    """A param value as shown: a plottable number, a bool, or text (at most 200 characters)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        number = _number(value)
        return number if number is not None else str(value)[:40]
    return str(value)[:200]


def _row(row: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    number = _whole(row.get("number")) if isinstance(row, dict) else None
    if number is None:
        problems.append(f"{where}: not a trial (no whole-number `number`); skipped")
        return None
    params = row.get("params") if isinstance(row.get("params"), dict) else {}
    state = row.get("state") if row.get("state") in STATES else "unknown"
    wave = row.get("wave")
    return {
        "number": number,
        "params": {
            str(k)[:100]: _param(v)
            for k, v in list(params.items())[:MAX_PARAMS]
            if isinstance(v, str | int | float | bool)
        },
        "state": state,
        "value": _number(row.get("value")),
        "pruned_at_step": _whole(row.get("pruned_at_step")),
        "wave": wave if isinstance(wave, str) and _RUN_ID.match(wave) else None,
        "failure": str(row["failure"])[:300] if row.get("failure") else None,
    }


def read_sweep(reader: ModelDirReader, problems: list[str]) -> dict[str, Any] | None:
    """The checked snapshot, or None when the model dir holds no sweep."""
    import json

    raw = reader.read(SWEEP_FILE)
    if raw is None:
        return None
    where = reader.path(SWEEP_FILE)
    try:
        snapshot = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{where} is not valid JSON ({type(err).__name__})") from None
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("trials"), list):
        raise ValueError(f"{where} is not a sweep snapshot (an object with a list of trials)")
    rows = snapshot["trials"][:MAX_TRIALS]
    if len(snapshot["trials"]) > MAX_TRIALS:
        problems.append(
            f"{where}: {len(snapshot['trials']):,} trials, the first {MAX_TRIALS:,} shown"
        )
    trials = [r for i, row in enumerate(rows) if (r := _row(row, f"{where}: trial {i}", problems))]
    names = sorted({name for r in trials for name in r["params"]})
    if len(names) > MAX_PARAMS:
        problems.append(
            f"{where}: {len(names):,} distinct params, the first {MAX_PARAMS} shown as columns"
        )
    mode = snapshot.get("mode") if snapshot.get("mode") in ("min", "max") else "min"
    best = snapshot.get("best")
    return {
        "study": str(snapshot.get("study", "")),
        "metric": str(snapshot.get("metric", "")),
        "mode": mode,
        "sampler": str(snapshot.get("sampler", "")),
        "pruner": str(snapshot.get("pruner", "")),
        "trials_total": _whole(snapshot.get("trials_total")),
        "best": _whole(best),
        "trials": sorted(trials, key=lambda r: r["number"]),
        "param_names": names[:MAX_PARAMS],
    }


def best_so_far(sweep: dict[str, Any]) -> list[tuple[float, float]]:
    """(trial number, best complete value up to it), one point per complete trial."""
    pick = min if sweep["mode"] == "min" else max
    points, best = [], None
    for row in sweep["trials"]:
        if row["state"] == "complete" and row["value"] is not None:
            best = row["value"] if best is None else pick(best, row["value"])
            points.append((float(row["number"]), best))
    return points


def sweep_chart(sweep: dict[str, Any]) -> str:
    """Objective per trial (complete and pruned: a pruned trial at its last reported value),
    with the best so far."""
    from airflow_tfexp.plugins.charts import line_chart

    series = {
        state: [
            (float(r["number"]), r["value"])
            for r in sweep["trials"]
            if r["state"] == state and r["value"] is not None
        ]
        for state in ("complete", "pruned")
    }
    series["best so far"] = best_so_far(sweep)
    return line_chart(f"{sweep['metric']} per trial ({sweep['mode']})", series, "trial-point")
