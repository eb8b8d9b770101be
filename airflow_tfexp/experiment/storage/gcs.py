"""Google Cloud Storage through google-cloud-storage (which honours STORAGE_EMULATOR_HOST).

Credentials are Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS or the
metadata server); the Airflow operators point ADC at their `gcp_conn_id` connection's key.
Transient errors (429, 5xx, dropped connections, timeouts) are retried with exponential backoff.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)
RETRY_DEADLINE_SECS = 120.0
UPDATE_ATTEMPTS = 60  # compare-and-swap tries before giving up (backoff capped at 1 s)


def split(path: str) -> tuple[str, str]:
    """("bucket", "object/name") of a gs:// path."""
    bucket, _, name = path[len("gs://") :].partition("/")
    return bucket, name


@functools.cache
def _retry() -> Any:
    from google.api_core import exceptions, retry

    transient = (
        exceptions.TooManyRequests,
        exceptions.InternalServerError,
        exceptions.BadGateway,
        exceptions.ServiceUnavailable,
        exceptions.GatewayTimeout,
        ConnectionError,
    )

    def predicate(err: Exception) -> bool:
        import requests

        # Timeouts too: an overloaded server that answers late is as transient as a dropped one.
        retried = isinstance(err, transient) or isinstance(
            err, requests.exceptions.ConnectionError | requests.exceptions.Timeout
        )
        if retried:
            log.warning("Transient storage error, retrying with backoff: %s", err)
        return retried

    return retry.Retry(
        predicate=predicate, initial=0.5, maximum=8.0, multiplier=2.0, timeout=RETRY_DEADLINE_SECS
    )


class StorageCredentialsError(PermissionError):
    """No credentials to reach Google Cloud Storage."""


def _bucket_missing(path: str, err: Exception) -> FileNotFoundError:
    bucket, _ = split(path)
    return FileNotFoundError(
        f"GCS bucket {bucket!r} does not exist or is not visible with these credentials "
        f"(while accessing {path}): {err}"
    )


class GcsFileSystem:
    """GCS access with one set of credentials (None: Application Default Credentials)."""

    def __init__(self, credentials: Any = None) -> None:
        self._credentials = credentials
        self._local = threading.local()

    @property
    def client(self) -> Any:
        # One client per thread: the trigger runs scans in worker threads.
        if not hasattr(self._local, "client"):
            from google.auth.exceptions import DefaultCredentialsError
            from google.cloud import storage

            try:
                self._local.client = storage.Client(credentials=self._credentials)
            except DefaultCredentialsError as err:
                raise StorageCredentialsError(
                    "No Google Cloud credentials to reach gs:// model dirs: give the task a "
                    "`gcp_conn_id` connection with a service-account key (keyfile_dict or key_path), "
                    "or set up Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS); "
                    f"for an emulator set STORAGE_EMULATOR_HOST. ({type(err).__name__})"
                ) from None
        return self._local.client

    def blob(self, path: str) -> Any:
        bucket, name = split(path)
        return self.client.bucket(bucket).blob(name)

    def listdir(self, directory: str) -> list[str]:
        from google.api_core.exceptions import NotFound

        bucket, prefix = split(directory.rstrip("/") + "/")
        iterator = self.client.list_blobs(bucket, prefix=prefix, delimiter="/", retry=_retry())
        try:
            names = [blob.name[len(prefix) :] for blob in iterator]  # consumes every page
        except NotFound as err:
            raise _bucket_missing(directory, err) from None
        names += [p[len(prefix) :].rstrip("/") for p in iterator.prefixes]
        return [n for n in names if n]

    def read_bytes(self, path: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.blob(path).download_as_bytes(retry=_retry())
        except NotFound:
            return None

    def version(self, path: str) -> tuple[int, int] | None:
        from google.api_core.exceptions import NotFound

        bucket, name = split(path)
        try:
            blob = self.client.bucket(bucket).get_blob(name, retry=_retry())  # one Class B GET
        except NotFound:
            return None
        return None if blob is None else (int(blob.generation), int(blob.metageneration))

    def touch(self, path: str) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        bucket, name = split(path)
        try:
            blob = self.client.bucket(bucket).get_blob(name, retry=_retry())
            if blob is None:
                return
            blob.metadata = {**(blob.metadata or {}), "tfexp-touched": f"{time.time():.6f}"}
            # a metadata patch (a new metageneration, the content untouched), only if nobody
            # changed it since: a writer who did has changed its version anyway
            blob.patch(if_metageneration_match=blob.metageneration, retry=_retry())
        except (NotFound, PreconditionFailed):
            return

    def read_bytes_at_most(self, path: str, limit: int) -> bytes | None:
        from google.api_core.exceptions import NotFound

        from airflow_tfexp.experiment.errors import FileTooLargeError

        bucket, name = split(path)
        try:
            blob = self.client.bucket(bucket).get_blob(name, retry=_retry())
            if blob is None:
                return None
            if (blob.size or 0) > limit:
                raise FileTooLargeError(f"{path} is {blob.size:,} bytes, over {limit:,}")
            # the generation read is the one whose size was checked (an overwrite in between
            # is not read whole); end is inclusive
            data = blob.download_as_bytes(
                end=limit, if_generation_match=blob.generation, retry=_retry()
            )
        except NotFound:
            return None
        if len(data) > limit:
            raise FileTooLargeError(f"{path} is over {limit:,} bytes")
        return data

    def write_bytes(self, path: str, data: bytes) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.blob(path).upload_from_string(data, retry=_retry())  # one object: atomic
        except NotFound as err:
            raise _bucket_missing(path, err) from None

    def create_new(self, path: str, data: bytes) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            # generation 0: only if no live object has this name (one upload: atomic)
            self.blob(path).upload_from_string(data, if_generation_match=0, retry=_retry())
            return True
        except PreconditionFailed:
            return False
        except NotFound as err:
            raise _bucket_missing(path, err) from None

    def update_bytes(self, path: str, change: Callable[[bytes | None], bytes | None]) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        from airflow_tfexp.experiment.errors import ConcurrentUpdateError

        bucket, name = split(path)
        for attempt in range(UPDATE_ATTEMPTS):
            try:
                blob = self.client.bucket(bucket).get_blob(name, retry=_retry())
                generation = 0 if blob is None else blob.generation  # 0: "no live object"
                current = None
                if blob is not None:
                    current = blob.download_as_bytes(if_generation_match=generation, retry=_retry())
                new = change(current)
                if new is None:
                    return False
                # only if nobody replaced it since it was read; a precondition makes the
                # upload safe to retry
                self.blob(path).upload_from_string(
                    new, if_generation_match=generation, retry=_retry()
                )
                return True
            except NotFound as err:  # no bucket, or the object deleted between two requests
                if not self.client.bucket(bucket).exists(retry=_retry()):
                    raise _bucket_missing(path, err) from None
            except PreconditionFailed:
                # another writer was first: back off (jittered, so that racers spread out)
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
        raise ConcurrentUpdateError(
            f"{path}: still replaced by other writers after {UPDATE_ATTEMPTS} attempts to update it"
        )

    def append_line(self, path: str, line: str) -> None:
        # GCS objects cannot be appended to: rewrite the whole (small) object, compare-and-swap
        # on its generation, so that concurrent appenders (mapped evaluations) lose nothing
        record = line.rstrip("\n").encode()

        def with_line(current: bytes | None) -> bytes | None:
            current = current or b""
            if record in current.split(b"\n"):
                return None  # already there: a retried upload that had in fact succeeded
            if current and not current.endswith(b"\n"):
                current += b"\n"  # a torn tail ends here, not glued to this record
            return current + record + b"\n"

        self.update_bytes(path, with_line)

    def delete(self, path: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.blob(path).delete(retry=_retry())
        except NotFound:
            pass

    def delete_tree(self, directory: str) -> None:
        bucket, prefix = split(directory.rstrip("/") + "/")
        for blob in self.client.list_blobs(bucket, prefix=prefix, retry=_retry()):
            self.delete(f"gs://{bucket}/{blob.name}")

    def upload_file(self, local_path: str, path: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.blob(path).upload_from_filename(local_path, retry=_retry())
        except NotFound as err:
            raise _bucket_missing(path, err) from None

    def download_file(self, path: str, local_path: str) -> None:
        self.blob(path).download_to_filename(local_path, retry=_retry())

    def copy(self, source: str, destination: str) -> None:
        source_bucket, source_name = split(source)
        bucket = self.client.bucket(source_bucket)
        destination_bucket, destination_name = split(destination)
        bucket.copy_blob(
            bucket.blob(source_name),
            self.client.bucket(destination_bucket),
            destination_name,
            retry=_retry(),
        )

    def list_tree(self, directory: str) -> list[str]:
        """Every object under `directory`, as paths relative to it."""
        from google.api_core.exceptions import NotFound

        bucket, prefix = split(directory.rstrip("/") + "/")
        try:
            return [
                b.name[len(prefix) :]
                for b in self.client.list_blobs(bucket, prefix=prefix, retry=_retry())
            ]
        except NotFound as err:
            raise _bucket_missing(directory, err) from None


# Credentials for the code running in this context (a trigger's task, a thread it started):
# None means Application Default Credentials. A ContextVar, so that triggers sharing one
# triggerer process never see each other's credentials; asyncio.to_thread carries it along.
_CREDENTIALS: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "tfexp_gcs_credentials", default=None
)
_FILESYSTEMS: dict[int | None, GcsFileSystem] = {}
_FILESYSTEMS_LOCK = threading.Lock()


@contextlib.contextmanager
def using_credentials(credentials: Any) -> Iterator[None]:
    """Use these google.auth credentials for gs:// access in this context."""
    token = _CREDENTIALS.set(credentials)
    try:
        yield
    finally:
        _CREDENTIALS.reset(token)


def gcs_filesystem() -> GcsFileSystem:
    credentials = _CREDENTIALS.get()
    key = None if credentials is None else id(credentials)
    with _FILESYSTEMS_LOCK:
        if key not in _FILESYSTEMS:
            _FILESYSTEMS[key] = GcsFileSystem(credentials)
        return _FILESYSTEMS[key]


def reset_clients() -> None:
    """Forget the clients: the next access builds new ones with the credentials then in force."""
    with _FILESYSTEMS_LOCK:
        _FILESYSTEMS.clear()
