"""How the Experiments pages read a model dir: only regular files inside it, of bounded size.

Whoever can write a model dir can put anything there: a `run.json` linked to the API server's
passwords file, a FIFO named like an event file, a link to /dev/zero, a 200 MB event file. The
pages resolve every path and refuse what leaves the model dir, what is not a regular file, and
what is over `[tfexp] ui_max_file_mb`; each refusal is an `UnreadableFile`, which the page
lists as a problem.
"""

from __future__ import annotations

import os

from airflow_tfexp.experiment.errors import FileTooLargeError, NotARegularFileError
from airflow_tfexp.experiment.storage.confinement import is_inside
from airflow_tfexp.experiment.storage.fs import filesystem, is_gcs, join


class UnreadableFile(ValueError):
    """A file or directory the pages will not read; the message says which and why."""


class ModelDirReader:
    """Reads `model_dir/<parts>` for the pages; `max_bytes` caps every file."""

    def __init__(self, model_dir: str, max_bytes: int) -> None:
        self.model_dir = model_dir
        self.max_bytes = max_bytes
        self.owner: str | None = None  # the experiment its stamp names, once checked
        self._remote = is_gcs(model_dir)
        self._root = model_dir if self._remote else os.path.realpath(model_dir)

    def path(self, *parts: str) -> str:
        return join(self.model_dir, *parts)

    def _confined(self, *parts: str) -> str:
        path = self.path(*parts)
        if self._remote:
            return path  # object names: no links; `..` segments are refused by parse_model_dir
        if any(part in ("", ".", "..") or os.sep in part for part in parts):
            raise UnreadableFile(f"{path}: not a plain name inside the model dir, not read")
        if not is_inside(self._root, path):
            target = os.path.realpath(path)
            raise UnreadableFile(f"{path} links outside the model dir (to {target}), not read")
        return path

    def listdir(self, *parts: str) -> list[str]:
        """Names in `model_dir/<parts>` ([] when missing)."""
        path = self._confined(*parts)
        return filesystem(path).listdir(path)

    def read(self, *parts: str) -> bytes | None:
        """A file's bytes, None when it does not exist; UnreadableFile when it is refused."""
        path = self._confined(*parts)
        try:
            return filesystem(path).read_bytes_at_most(path, self.max_bytes)
        except FileTooLargeError:
            limit_mb = self.max_bytes / 2**20
            raise UnreadableFile(
                f"{path} is larger than [tfexp] ui_max_file_mb = {limit_mb:g} MB, not read"
            ) from None
        except NotARegularFileError as err:
            raise UnreadableFile(f"{err}: not read") from None
