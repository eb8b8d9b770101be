"""Where a model directory lives: a local path or `gs://bucket/prefix`. Cheap to check at DAG
parse time; anything else is rejected with the list of what is supported."""

from __future__ import annotations

import re
from typing import Any

SUPPORTED = ("a local path", "gs://bucket/prefix")
_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"


class ModelDirLocation:
    """A parsed model dir: `scheme` is "" for local paths, else "gs" with bucket and prefix.

    A plain class, not a dataclass: building a dataclass costs half a millisecond at import,
    and this module is imported while every DAG file using the operators is parsed."""

    __slots__ = ("url", "scheme", "bucket", "prefix")

    def __init__(self, url: str, scheme: str, bucket: str = "", prefix: str = "") -> None:
        self.url, self.scheme, self.bucket, self.prefix = url, scheme, bucket, prefix

    def _fields(self) -> tuple[str, str, str, str]:
        return (self.url, self.scheme, self.bucket, self.prefix)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelDirLocation) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "ModelDirLocation(url={!r}, scheme={!r}, bucket={!r}, prefix={!r})".format(
            *self._fields()
        )

    @property
    def is_local(self) -> bool:
        return not self.scheme


def parse_model_dir(value: Any, argument: str = "model_dir") -> ModelDirLocation:
    """Validate a model dir; a ValueError names the argument, the value and what is supported."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {value!r}. Expected {' or '.join(SUPPORTED)}."
        )
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {value!r}: a model dir may not hold "
            "control characters (NUL, newline, ...). Expected a plain path."
        )
    # Plain string checks (no regex compiled at import): this runs at every DAG parse.
    scheme, sep, _ = value.partition("://")
    if (
        not sep
        or not scheme
        or not scheme[0].isalpha()
        or not scheme.replace("+", "").replace(".", "").replace("-", "").isalnum()
    ):
        segments = value.replace("\\", "/").split("/")
        if ".." in segments or "." in segments[1:]:
            raise ValueError(
                f"Invalid value for `{argument}`. Received: {value!r}: a model dir may not have "
                "'..' or (past the start) '.' segments: a rendered template must not climb out "
                "of its parent or land on it. Expected a path such as /srv/models/my-experiment."
            )
        return ModelDirLocation(url=value, scheme="")
    if scheme.lower() == "file":
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {value!r}: write a local path without "
            f"file:// (Expected {value[len('file://') :]!r})."
        )
    if scheme != "gs":
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {value!r}: the scheme {scheme + '://'!r} is not "
            f"supported. Expected {' or '.join(SUPPORTED)}."
        )
    bucket, _, prefix = value[len("gs://") :].partition("/")
    if not re.match(_BUCKET_PATTERN, bucket):
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {value!r}: {bucket!r} is not a valid bucket name."
        )
    segments = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {value!r}: a gs:// path may not have "
            "'.', '..' or empty ('//') segments (object names are used as they are, and the "
            "local staging dir would resolve them). Expected gs://bucket/prefix."
        )
    return ModelDirLocation(
        url=value.rstrip("/"), scheme="gs", bucket=bucket, prefix=prefix.strip("/")
    )
