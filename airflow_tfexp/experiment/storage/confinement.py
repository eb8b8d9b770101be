"""Paths built from names a model dir holds (a checkpoint state file, object names in a bucket)
stay inside the directory they belong to: a hostile model dir changes nothing outside itself."""

from __future__ import annotations

import os


def is_inside(root: str, path: str) -> bool:
    """Whether `path` is `root` or below it once `.`, `..` and symlinks are resolved (a link in
    the model dir to another team's dir is outside)."""
    root, path = os.path.realpath(root), os.path.realpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confined(root: str, path: str, what: str) -> str:
    """`path` made absolute, or ValueError naming it when it leaves `root`."""
    if not is_inside(root, path):
        raise ValueError(f"{what} {path!r} is outside {root!r}: refusing to use it.")
    return os.path.abspath(path)
