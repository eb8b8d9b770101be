"""Dataset names of the OpenLineage naming spec for the paths and URIs an experiment uses:
`gs://bucket` + object path for Cloud Storage (and `scheme://bucket` + object key for the
other object stores: s3, s3a, wasbs, ...), `file` + absolute path for local files, and
`scheme://authority` + path for any other asset URI a run was triggered by. Query strings and
fragments are not part of a name."""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit

OBJECT_STORES = {"gs", "s3", "s3a", "s3n", "wasbs", "abfss", "oss", "cos"}


def dataset_name(location: str) -> tuple[str, str]:
    """(namespace, name) of a model dir, export, publish dir or asset URI."""
    location = str(location)
    if location.startswith("file://"):
        location = urlsplit(location).path
    if "://" not in location:
        return "file", posixpath.normpath(location) if location else "/"
    parts = urlsplit(location)
    if parts.scheme in OBJECT_STORES:
        return f"{parts.scheme}://{parts.netloc}", parts.path.strip("/") or "/"
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
