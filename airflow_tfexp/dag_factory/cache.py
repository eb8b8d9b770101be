"""A cache of validated plans, so that parsing an unchanged YAML config costs no validation.

The key covers everything the plan depends on: the config file's bytes, the configured
executors (they are validated against) and the factory's own code. Entries are written whole
(temporary file + rename); an unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

CACHE_ENV = "TFEXP_FACTORY_CACHE"
_FACTORY_FILES = ("spec.py", "stages.py", "plan.py", "compute.py", "cache.py")


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "airflow-tfexp", "factory"
    )


def cache_key(source: bytes, executors: list[str]) -> str:
    from airflow_tfexp import __version__

    digest = hashlib.sha256(source)
    digest.update(f"\0{__version__}\0{','.join(executors)}".encode())
    here = os.path.dirname(__file__)
    for name in _FACTORY_FILES:  # a changed factory (an upgrade, a checkout) changes every key
        stat = os.stat(os.path.join(here, name))
        digest.update(f"\0{name}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    return digest.hexdigest()


def load_plan(key: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(cache_dir(), f"{key}.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def store_plan(key: str, plan: dict[str, Any]) -> None:
    """Best effort: a plan that is not plain JSON, or a read-only disk, just means no cache."""
    try:
        text = json.dumps(plan, sort_keys=True)
        directory = cache_dir()
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, os.path.join(directory, f"{key}.json"))
    except (OSError, TypeError, ValueError):
        return
