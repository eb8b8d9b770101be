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


def within_roots(path: str, roots: list[str]) -> bool:
    """Whether `path` (a local path or gs:// URL) is one of `roots` or below it: local paths
    once symlinks are resolved, gs:// paths by bucket and whole prefix segments."""
    from airflow_tfexp.experiment.storage.locations import parse_model_dir

    location = parse_model_dir(path, "path")
    for root in roots:
        allowed = parse_model_dir(root, "model_dir_roots")
        if location.is_local and allowed.is_local:
            if is_inside(allowed.url, location.url):
                return True
        elif not location.is_local and not allowed.is_local:
            if location.bucket == allowed.bucket and (
                not allowed.prefix
                or location.prefix == allowed.prefix
                or location.prefix.startswith(allowed.prefix + "/")
            ):
                return True
    return False


def check_within_roots(path: str, roots: list[str], what: str = "model_dir") -> None:
    """ValueError naming `what`, the path and the roots when `path` is outside all of them (no
    roots: no limit)."""
    if roots and not within_roots(path, roots):
        raise ValueError(
            f"Invalid value for `{what}`. Received: {path!r}: it is outside the model dir roots "
            f"this Airflow allows ([tfexp] model_dir_roots = {', '.join(roots)}). Expected a "
            "path inside one of them."
        )


def links_leaving(root: str) -> list[tuple[str, str]]:
    """`(link, target)` for every symlink under the local dir `root` (not followed) that
    resolves outside it: the engine appends to results files, writes exports and deletes old
    ones below a model dir, and must not do so through a link into another team's dir."""
    found = []
    for current, dirs, files in os.walk(
        root
    ):  # followlinks=False: linked dirs are listed, not entered
        for name in dirs + files:
            path = os.path.join(current, name)
            if os.path.islink(path) and not is_inside(root, path):
                found.append((path, os.path.realpath(path)))
    return found


def nested_files(root: str, name: str) -> list[str]:
    """Every file called `name` in a dir below the local dir `root` (not `root/name` itself)."""
    return [
        os.path.join(current, name)
        for current, _, files in os.walk(root)
        if current != root and name in files
    ]
