"""The database of a hyperparameter sweep's Optuna study, from an Airflow connection.

A sweep's `study_conn_id` names either a connection of this provider's type `tfexp_study`
(its form asks for the dialect, host, port, database and credentials, or a whole SQLAlchemy
URL) or an existing `postgres`, `mysql` or `sqlite` connection. The URL is built here only;
secrets never reach a log line.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseHook

CONN_TYPE = "tfexp_study"
DIALECTS = ("postgresql", "mysql", "sqlite")
_SCHEMES = {"postgres": "postgresql", "postgresql": "postgresql", "mysql": "mysql"}


class StudyStorageHook(BaseHook):
    """The SQLAlchemy URL of a study database (`get_storage_url`), for `optuna.storages`."""

    conn_name_attr = "study_conn_id"
    default_conn_name = "tfexp_study_default"
    conn_type = CONN_TYPE
    hook_name = "TensorFlow Experiment study storage"

    def __init__(self, study_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.study_conn_id = study_conn_id

    def get_conn(self) -> str:
        return self.get_storage_url()

    def get_storage_url(self) -> str:
        """The extra `sqlalchemy_url` when set, else a URL built from the connection's fields
        and its dialect (the `dialect` extra of a `tfexp_study` connection, postgresql when
        the form left it empty; else the connection's type). The URL's password is masked in
        task logs."""
        conn = self.get_connection(self.study_conn_id)
        extra = conn.extra_dejson or {}
        given = _field(extra, "sqlalchemy_url")
        if given:
            if not isinstance(given, str):
                raise ValueError(
                    f"The connection {self.study_conn_id!r} has a `sqlalchemy_url` that is not a "
                    f"string ({type(given).__name__}). Expected a URL like postgresql://host/db."
                )
            return _masked(given)
        dialect = _dialect(self.study_conn_id, conn.conn_type, _field(extra, "dialect"))
        if dialect == "sqlite":
            if not conn.host:
                raise ValueError(
                    f"The connection {self.study_conn_id!r} is a SQLite study database without "
                    "a file: put the database file's path in its host field."
                )
            return f"sqlite:///{conn.host}"
        if not conn.host:
            raise ValueError(
                f"The connection {self.study_conn_id!r} names no host for its {dialect} study "
                "database: set its host (and port, database, login and password)."
            )
        if conn.password and not conn.login:
            raise ValueError(
                f"The connection {self.study_conn_id!r} has a password but no login: set the "
                "login too (a URL cannot carry a password alone)."
            )
        auth = ""
        if conn.login:
            auth = quote(conn.login, safe="")
            if conn.password:
                auth += ":" + quote(conn.password, safe="")
            auth += "@"
        host = f"[{conn.host}]" if ":" in conn.host and not conn.host.startswith("[") else conn.host
        port = f":{conn.port}" if conn.port else ""
        database = quote(conn.schema or "", safe="")
        return _masked(f"{dialect}://{auth}{host}{port}/{database}")


def _masked(url: str) -> str:
    """The URL, with its password registered with Airflow's secrets masker."""
    from urllib.parse import unquote, urlsplit

    from airflow.sdk.log import mask_secret

    password = urlsplit(url).password
    if password:
        mask_secret(password)
        mask_secret(unquote(password))
    return url


def _field(extra: dict[str, Any], name: str) -> Any:
    """A form field as the UI stores it in the extra (plain, or with the older prefix)."""
    return extra.get(name) or extra.get(f"extra__{CONN_TYPE}__{name}")


def _dialect(conn_id: str, conn_type: str | None, dialect: Any) -> str:
    if conn_type == CONN_TYPE:
        if dialect in (None, ""):
            return "postgresql"  # the form's default
        if dialect in DIALECTS:
            return dialect
        raise ValueError(
            f"The connection {conn_id!r} has the dialect {dialect!r}. Expected one of "
            f"{', '.join(DIALECTS)}, or a whole URL in its `sqlalchemy_url` field."
        )
    if conn_type == "sqlite":
        return "sqlite"
    if conn_type in _SCHEMES:
        return _SCHEMES[conn_type]
    raise ValueError(
        f"The connection {conn_id!r} (type {conn_type!r}) does not name a study database: use "
        f"a {CONN_TYPE}, postgres, mysql or sqlite connection, or put the SQLAlchemy URL in its "
        'extra as {"sqlalchemy_url": "..."}.'
    )
