"""What the approval request says: Markdown for the person answering, built from the
blessing record. That record comes from a model dir, which its writers control, so every
name, path and reason is escaped as Markdown text (no links, emphasis, HTML or table cells of
its own), every number is checked, and everything is bounded."""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_ROWS = 50
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&^$=:\"'])")


def text(value: Any, limit: int = 200) -> str:
    """Plain text in Markdown: special characters escaped, one line, at most `limit` chars."""
    flat = " ".join(str(value)[:limit].split())
    return _MARKDOWN.sub(r"\\\1", flat)


def code(value: Any, limit: int = 300) -> str:
    """A path or name as inline code (backticks and line breaks removed)."""
    flat = " ".join(str(value)[:limit].replace("`", "'").split())
    return f"`{flat}`" if flat else "`-`"


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    try:
        value = float(value)
    except OverflowError:
        return "-"
    return f"{value:.6g}" if math.isfinite(value) else "-"


def duration(value: datetime.timedelta | None) -> str:
    """1d, 2h 30m, 90s: how a config spells it."""
    if value is None:
        return "no limit"
    seconds, parts = int(value.total_seconds()), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts)


def _metrics(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def approval_body(
    blessing: Mapping[str, Any],
    publish_dir: str | None,
    run_page: str,
    timeout: datetime.timedelta | None,
) -> str:
    """Both sides' metrics, where the candidate goes, the run page, and what no answer means."""
    candidate = _metrics(blessing.get("candidate_metrics"))
    baseline = _metrics(blessing.get("baseline_metrics"))
    version = blessing.get("baseline_version")
    names = sorted({str(k) for k in candidate} | {str(k) for k in baseline})
    rows = [
        f"| {text(name, 100)} | {number(candidate.get(name))} | {number(baseline.get(name))} |"
        for name in names[:MAX_ROWS]
    ]
    if len(names) > MAX_ROWS:
        rows.append(f"| {len(names) - MAX_ROWS} more metrics on the run page | | |")
    side = f"version {text(version, 20)}" if version is not None else "none published"
    lines = [
        f"**Candidate**: {code(blessing.get('candidate_export'))}",
        f"**Blessed** on {code(blessing.get('metric'), 100)}: {text(blessing.get('reason'), 300)}",
        "",
        f"| metric | candidate | baseline ({side}) |",
        "| --- | --- | --- |",
        *rows,
        "",
        f"Approve publishes it to {code(publish_dir)}. Reject keeps production as it is"
        + (f"; no answer within {duration(timeout)} is a Reject." if timeout else "."),
        "Give a reason either way: it is recorded in the run's lineage.",
        "",
        f"[The run's Experiments page]({run_page})",
    ]
    return "\n".join(lines)
