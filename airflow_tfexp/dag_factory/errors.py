"""The factory's error (a module of its own: raising it must not import pydantic)."""

from __future__ import annotations


class ExperimentConfigError(ValueError):
    """A config that cannot become a DAG; the message lists every problem, one per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            f"Invalid experiment config {source}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
