"""Model dirs belong to an experiment: the first writer stamps the dir, later writers must match.

In a shared Airflow a run's `model_dir` may come from its conf, chosen by a user who may only
trigger. The stamp (`.tfexp_owner.json`, created exclusively: a local hard link or a GCS
`ifGenerationMatch=0` upload) makes "write into another team's model dir" fail before anything
is written, with an error naming the owner. Reading (warm start, the UI) checks it too.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow_tfexp.experiment.storage.fs import filesystem, join

OWNER_FILE = ".tfexp_owner.json"
MAX_STAMP_BYTES = 4096  # a stamp is one short JSON object


class ModelDirOwnershipError(PermissionError):
    """A model dir that belongs to another experiment (or whose stamp is unreadable)."""


def owner_path(model_dir: str) -> str:
    return join(model_dir, OWNER_FILE)


def read_owner(model_dir: str) -> str | None:
    """The experiment that owns `model_dir`, None if it is not stamped; a stamp that is not
    what this module writes is a ModelDirOwnershipError (never read as "unowned")."""
    from airflow_tfexp.experiment.errors import FileTooLargeError, NotARegularFileError
    from airflow_tfexp.experiment.storage.fs import is_gcs

    path = owner_path(model_dir)
    try:
        if not is_gcs(path) and os.path.islink(path):
            raise NotARegularFileError(f"{path} is a link")
        # bounded and non-blocking: the pages read the stamps of the dirs above a model dir
        raw = filesystem(path).read_bytes_at_most(path, MAX_STAMP_BYTES)
    except (FileTooLargeError, NotARegularFileError) as err:
        raise ModelDirOwnershipError(
            f"{path} is not an owner stamp ({err}): refusing to use its model dir."
        ) from None
    return parse_owner(raw, path)


def parse_owner(raw: bytes | None, path: str) -> str | None:
    """The experiment named by the bytes of an owner stamp at `path` (None: no stamp)."""
    if raw is None:
        return None
    try:
        record: Any = json.loads(raw)
        owner = record["experiment"]
        if not isinstance(owner, str) or not owner:
            raise ValueError(f"experiment is {owner!r}")
    except (ValueError, TypeError, KeyError, RecursionError) as err:
        raise ModelDirOwnershipError(
            f"{path} is not an owner stamp ({type(err).__name__}: {err}): refusing to use "
            f'its model dir. Expected {{"experiment": "<dag_id>"}}.'
        ) from None
    return owner


def ancestors(model_dir: str) -> list[str]:
    """The dirs `model_dir` is inside, nearest first (local: once symlinks are resolved; gs://:
    each shorter prefix, down to the bucket)."""
    from airflow_tfexp.experiment.storage.fs import dirname, is_gcs

    found = []
    current = model_dir.rstrip("/") if is_gcs(model_dir) else os.path.realpath(model_dir)
    while True:
        parent = dirname(current)
        if parent == current or (is_gcs(model_dir) and parent.count("/") < 2):
            return found
        found.append(parent)
        current = parent


def enclosing_owner(model_dir: str) -> tuple[str, str] | None:
    """`(dir, experiment)` of the nearest dir above `model_dir` that has an owner stamp."""
    for directory in ancestors(model_dir):
        owner = read_owner(directory)
        if owner is not None:
            return directory, owner
    return None


def nested_owners(model_dir: str) -> dict[str, str]:
    """`{dir: experiment}` for the stamped dirs below `model_dir` (a parent must not be claimed
    over other experiments' model dirs)."""
    from airflow_tfexp.experiment.storage.confinement import nested_files
    from airflow_tfexp.experiment.storage.fs import dirname, is_gcs

    if is_gcs(model_dir):
        fs: Any = filesystem(model_dir)
        names = [n for n in fs.list_tree(model_dir) if n.endswith("/" + OWNER_FILE)]
        stamps = [join(model_dir, n) for n in names]
    else:
        stamps = nested_files(model_dir, OWNER_FILE)
    found = {}
    for stamp in stamps:
        directory = dirname(stamp)
        found[directory] = read_owner(directory) or ""
    return found


def check_safe_to_write(model_dir: str) -> None:
    """UnsafeModelDirError naming the first symlink below a local `model_dir` that leads out."""
    from airflow_tfexp.experiment.errors import UnsafeModelDirError
    from airflow_tfexp.experiment.storage.confinement import links_leaving
    from airflow_tfexp.experiment.storage.fs import is_gcs

    if is_gcs(model_dir) or not os.path.isdir(model_dir):
        return
    leaving = links_leaving(model_dir)
    if leaving:
        link, target = leaving[0]
        raise UnsafeModelDirError(
            f"{link} is a link to {target}, outside the model dir {model_dir}: refusing to "
            f"write there ({len(leaving)} such link(s)). Remove the link."
        )


def claim_model_dir(
    model_dir: str, experiment: str, what: str = "model_dir", roots: list[str] | None = None
) -> bool:
    """Stamp `model_dir` as `experiment`'s if no one has, else check it is: True when this call
    stamped it. Raises ModelDirOwnershipError naming the owner when another experiment has, when
    `model_dir` is inside another experiment's model dir (its eval dir, say), holds another
    experiment's, or is one of `roots`; UnsafeModelDirError when a link in it leads out."""
    from airflow_tfexp.experiment.storage.confinement import within_roots

    for root in roots or []:
        if within_roots(root, [model_dir]):
            raise ModelDirOwnershipError(
                f"The {what} {model_dir} is (or holds) the model dir root {root} "
                "([tfexp] model_dir_roots), which holds many experiments' dirs: choose a dir "
                "inside it."
            )
    enclosing = enclosing_owner(model_dir)
    if enclosing is not None and enclosing[1] != experiment:
        raise ModelDirOwnershipError(
            f"The {what} {model_dir} is inside {enclosing[0]}, the model dir of the experiment "
            f"{enclosing[1]!r}; this task is of the experiment {experiment!r} and may not "
            f"write there. Choose a {what} of your own."
        )
    check_safe_to_write(model_dir)
    path = owner_path(model_dir)
    owner, created = read_owner(model_dir), False
    if owner is None:  # nobody's yet: create it, unless another writer wins the race
        foreign = {d: o for d, o in nested_owners(model_dir).items() if o != experiment}
        if foreign:
            directory, other = next(iter(sorted(foreign.items())))
            raise ModelDirOwnershipError(
                f"The {what} {model_dir} holds {directory}, the model dir of the experiment "
                f"{other!r}; this task is of the experiment {experiment!r} and may not claim "
                f"the dir above it. Choose a {what} of your own."
            )
        stamp = json.dumps({"experiment": experiment}, sort_keys=True).encode()
        created = filesystem(path).create_new(path, stamp)
        owner = read_owner(model_dir)  # the winner's, whoever that was
        created = created and owner == experiment
    if owner != experiment:
        raise ModelDirOwnershipError(
            f"The {what} {model_dir} belongs to the experiment {owner!r} ({path}); this task is "
            f"of the experiment {experiment!r} and may not write there. Choose a {what} of "
            f"your own (an experiment's writers are its training DAG and the tasks that name it "
            "as their `experiment_id`)."
        )
    return created
