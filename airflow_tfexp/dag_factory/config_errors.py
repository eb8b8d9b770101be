"""A pydantic error of an experiment config, as one line naming its field path."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel


def _did_you_mean(location: tuple, model: type[BaseModel]) -> str:
    """For an unknown key, the closest field of the model it appeared in."""
    fields: Any = model
    for part in location[:-1]:
        annotation = (
            fields.model_fields.get(part)
            if isinstance(part, str) and hasattr(fields, "model_fields")
            else None
        )
        if annotation is None:
            continue
        candidate = annotation.annotation
        for arg in getattr(candidate, "__args__", ()) or (candidate,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                fields = arg
    known = list(getattr(fields, "model_fields", {}))
    close = difflib.get_close_matches(str(location[-1]), known, n=1) if location else []
    return f'; did you mean "{close[0]}"?' if close else f"; known keys: {sorted(known)}"


def _path_part(part: Any) -> str:
    text = str(part)
    return text if text.replace("_", "a").replace("-", "a").isalnum() else repr(part)


def describe_error(error: dict[str, Any], root: type[BaseModel]) -> str:
    """One pydantic error as `field.path: what is wrong (got value)`."""
    location = tuple(error["loc"])
    if error["type"] != "extra_forbidden" and location[-1:] == ("[key]",):
        location = location[:-1]  # pydantic's marker of a bad dict key (a key may be "[key]")
    # A key that is not a plain name (" ", "a.b", "") is shown quoted, so the path stays readable.
    path = ".".join(_path_part(p) for p in location) or "(config)"
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"{path}: unknown key{_did_you_mean(location, root)}"
    if kind == "missing":
        return f"{path}: required"
    message = error["msg"].removeprefix("Value error, ")
    if not location:  # a whole-config check: its message names the fields and values itself
        return message
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{path}: {message} (got {shown})"
