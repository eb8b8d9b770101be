"""Dataset names of the OpenLineage naming spec for the paths and URIs an experiment uses:
`gs://bucket` + object path for Cloud Storage, `file` + absolute path for local files, and
`scheme://authority` + path for any other asset URI a run was triggered by."""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit


def dataset_name(location: str) -> tuple[str, str]:
    """(namespace, name) of a model dir, export, publish dir or asset URI."""
    location = str(location)
    if location.startswith("gs://"):
        bucket, _, path = location[len("gs://") :].partition("/")
        return f"gs://{bucket}", path.strip("/") or "/"
    if location.startswith("file://"):
        location = urlsplit(location).path
    if "://" not in location:
        return "file", posixpath.normpath(location) if location else "/"
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
