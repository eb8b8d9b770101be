"""gcp-storage-emulator with Cloud Storage's request preconditions.

The emulator ignores `ifGenerationMatch`, `ifGenerationNotMatch`, `ifMetagenerationMatch` and
`ifMetagenerationNotMatch` (measured: an upload or delete with a wrong generation succeeds),
while real Cloud Storage answers 412 Precondition Failed. The engine's compare-and-swap writes
rely on them, so this entry point adds them to the emulator, as Cloud Storage documents them
(https://cloud.google.com/storage/docs/request-preconditions): a generation of 0 means "no
live object". The server handles one request at a time, so the check and the write are atomic.

Run: `python tests/gcs_emulator_server.py --data-dir D start --port P --default-bucket B -q`
(the emulator's own command line).
"""

from __future__ import annotations

import sys
from http import HTTPStatus
from typing import Any

from gcp_storage_emulator import __main__ as emulator_main
from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.storage import Storage

_CONDITIONS = ("ifGenerationMatch", "ifGenerationNotMatch")
_META_CONDITIONS = ("ifMetagenerationMatch", "ifMetagenerationNotMatch")
_current_query: dict[str, list[str]] = {}  # the query of the request being handled
_resumable_queries: dict[str, dict[str, list[str]]] = {}  # upload id -> its initiating query


class PreconditionFailed(Exception):
    pass


def _check(storage: Storage, bucket: str, name: str, query: dict[str, list[str]]) -> None:
    try:
        obj = storage.get_file_obj(bucket, name)
        generation, metageneration = int(obj["generation"]), int(obj["metageneration"])
    except NotFound:
        generation, metageneration = 0, 0
    for key, actual in [(_CONDITIONS, generation), (_META_CONDITIONS, metageneration)]:
        match, not_match = (query.get(k, [None])[0] for k in key)
        if match is not None and int(match) != actual:
            raise PreconditionFailed(f"{key[0]}={match}, object {name!r} is at {actual}")
        if not_match is not None and int(not_match) == actual:
            raise PreconditionFailed(f"{key[1]}={not_match}, object {name!r} is at {actual}")


def _wrap(method_name: str, query_of: Any) -> None:
    original = getattr(Storage, method_name)

    def checked(self: Storage, bucket_name: str, file_name: str, *args: Any, **kwargs: Any):
        query = query_of(args, kwargs)
        if query:
            _check(self, bucket_name, file_name, query)
        result = original(self, bucket_name, file_name, *args, **kwargs)
        if method_name == "create_resumable_upload":
            _resumable_queries[str(result)] = dict(_current_query)
        return result

    setattr(Storage, method_name, checked)


def _create_query(args: tuple, kwargs: dict) -> dict[str, list[str]]:
    file_id = kwargs.get("file_id") or (args[2] if len(args) > 2 else None)
    if file_id:  # the end of a resumable upload: the conditions it was started with
        return _resumable_queries.pop(str(file_id), {})
    return _current_query


def _install() -> None:
    _wrap("create_file", _create_query)
    _wrap("create_resumable_upload", lambda args, kwargs: _current_query)
    _wrap("delete_file", lambda args, kwargs: _current_query)
    _wrap("patch_object", lambda args, kwargs: _current_query)
    handle = server.Router.handle

    def handle_with_preconditions(self: server.Router, method: str) -> None:
        request = server.Request(self._request_handler, method)
        _current_query.clear()
        _current_query.update(request.query)
        try:
            handle(self, method)
        except PreconditionFailed as err:
            response = server.Response(self._request_handler)
            response.status = HTTPStatus.PRECONDITION_FAILED
            message = f"Precondition Failed: {err}"
            response.json(
                {"error": {"code": 412, "message": message, "errors": [{"message": message}]}}
            )
            response.close()
        finally:
            _current_query.clear()

    server.Router.handle = handle_with_preconditions


if __name__ == "__main__":
    _install()
    sys.exit(emulator_main.main(sys.argv[1:]))
