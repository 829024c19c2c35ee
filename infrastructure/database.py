"""Which PostgreSQL server billrun talks to, and throwaway databases for tests."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infrastructure.settings import Settings


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """BILLRUN_DATABASE_URL if set; otherwise an embedded server under BILLRUN_HOME,
    stopped again when the block ends (if this process started it)."""
    if settings.database_url:
        yield settings.database_url
        return
    from infrastructure.embedded import embedded_postgres

    with embedded_postgres(settings.home) as url:
        yield url


def with_database(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def create_database(server_url: str, prefix: str = "billrun_test") -> str:
    """Create a fresh, uniquely named database on the server; return its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(url: str) -> None:
    name = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
