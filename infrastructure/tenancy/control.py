"""The control schema shared by every tenant: the tenant registry and API keys.

Everything else a tenant has lives in its own schema (`names.tenant_schema`);
only this registry, which says which tenants exist and which keys open them,
is shared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

from infrastructure.tenancy.actor import Principal, Role
from infrastructure.tenancy.keys import issue_key, secret_matches, split_key
from infrastructure.tenancy.names import (
    CONTROL_SCHEMA,
    DEFAULT_TENANT,
    check_tenant_name,
    tenant_schema,
)


class TenancyError(Exception):
    """A tenant or key command billrun refuses, with what and why."""


class UnknownTenant(TenancyError):
    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"tenant {tenant!r} does not exist (create it with `billrun tenant create {tenant}`)"
        )


class TenantExists(TenancyError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} exists already: nothing was changed")


class UnknownKey(TenancyError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id!r} does not exist")


@dataclass(frozen=True)
class Tenant:
    name: str
    schema: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "schema": self.schema, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class KeyRecord:
    """An API key as `apikey list` shows it: never its secret."""

    key_id: str
    tenant: str
    role: Role
    name: str | None
    created_at: datetime | None
    revoked_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "tenant": self.tenant,
            "role": str(self.role),
            "name": self.name,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


_DDL = [
    SQL("CREATE SCHEMA IF NOT EXISTS {s}"),
    SQL(
        "CREATE TABLE IF NOT EXISTS {s}.tenants ("
        " name text PRIMARY KEY,"
        " schema_name text NOT NULL UNIQUE,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    ),
    SQL(
        "CREATE TABLE IF NOT EXISTS {s}.api_keys ("
        " key_id text PRIMARY KEY,"
        " tenant text NOT NULL REFERENCES {s}.tenants (name),"
        " role text NOT NULL CHECK (role IN ('admin', 'operator', 'auditor', 'service')),"
        " name text,"
        " secret_sha256 bytea NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(),"
        " revoked_at timestamptz)"
    ),
    # The default tenant is the book kept before tenants existed, in `public`.
    SQL(
        "INSERT INTO {s}.tenants (name, schema_name) VALUES ('default', 'public') "
        "ON CONFLICT (name) DO NOTHING"
    ),
]


class ControlStore:
    """The tenant registry and the API keys of one database (a small pool: the HTTP
    server authenticates every request through it)."""

    def __init__(self, database_url: str, max_size: int = 4) -> None:
        self._pool = ConnectionPool(
            database_url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
        )
        self._ready = False

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> ControlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        if self._pool.closed:
            self._pool.open(wait=True)
        if not self._ready:
            self._create_tables()
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as curs:
            yield curs

    def _create_tables(self) -> None:
        """The control schema, in a transaction of its own (a refusal in the
        caller's must not roll it back after it was counted as done)."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as curs:
            # DDL is not safe to run concurrently (two processes starting together):
            # an advisory lock makes the second wait and find it done.
            curs.execute("SELECT pg_advisory_xact_lock(hashtext('billrun-schema:control'))")
            for statement in _DDL:
                curs.execute(statement.format(s=Identifier(CONTROL_SCHEMA)))
        self._ready = True

    # Tenants ----------------------------------------------------------------

    def create_tenant(self, name: str) -> Tenant:
        """Register `name` and create its schema, in one transaction; refused when it
        exists already (the default tenant always does)."""
        schema = tenant_schema(check_tenant_name(name)) or "public"
        with self._transaction() as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {}.tenants (name, schema_name) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO NOTHING RETURNING name, schema_name, created_at"
                ).format(Identifier(CONTROL_SCHEMA)),
                (name, schema),
            )
            row = curs.fetchone()
            if row is None:
                raise TenantExists(name)
            curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
        return Tenant(row["name"], row["schema_name"], row["created_at"])

    def tenants(self) -> list[Tenant]:
        with self._transaction() as curs:
            curs.execute(
                SQL("SELECT name, schema_name, created_at FROM {}.tenants ORDER BY name").format(
                    Identifier(CONTROL_SCHEMA)
                )
            )
            return [Tenant(r["name"], r["schema_name"], r["created_at"]) for r in curs.fetchall()]

    def require_tenant(self, name: str) -> None:
        """Refuse a tenant that was never created (the default tenant always exists)."""
        if name == DEFAULT_TENANT:
            return
        with self._transaction() as curs:
            curs.execute(
                SQL("SELECT 1 FROM {}.tenants WHERE name = %s").format(Identifier(CONTROL_SCHEMA)),
                (name,),
            )
            if curs.fetchone() is None:
                raise UnknownTenant(name)

    # Keys -------------------------------------------------------------------

    def create_key(self, tenant: str, role: Role, name: str | None = None) -> tuple[KeyRecord, str]:
        """A new key of `tenant` with `role`: its record and the raw key, which
        is returned this once and stored only as a hash."""
        self.require_tenant(tenant)
        issued = issue_key()
        with self._transaction() as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {}.api_keys (key_id, tenant, role, name, secret_sha256) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING created_at"
                ).format(Identifier(CONTROL_SCHEMA)),
                (issued.key_id, tenant, str(role), name, issued.secret_hash),
            )
            row = curs.fetchone()
        created_at = row["created_at"] if row else None  # an INSERT ... RETURNING: a row
        return KeyRecord(issued.key_id, tenant, role, name, created_at, None), issued.raw

    def keys(self, tenant: str | None = None) -> list[KeyRecord]:
        statement = SQL(
            "SELECT key_id, tenant, role, name, created_at, revoked_at FROM {}.api_keys"
        ).format(Identifier(CONTROL_SCHEMA))
        params: tuple[Any, ...] = ()
        if tenant is not None:
            statement += SQL(" WHERE tenant = %s")
            params = (tenant,)
        statement += SQL(" ORDER BY tenant, created_at, key_id")
        with self._transaction() as curs:
            curs.execute(statement, params)
            return [
                KeyRecord(
                    r["key_id"],
                    r["tenant"],
                    Role(r["role"]),
                    r["name"],
                    r["created_at"],
                    r["revoked_at"],
                )
                for r in curs.fetchall()
            ]

    def revoke_key(self, key_id: str) -> KeyRecord:
        """Revoke a key (at once: the next request with it is refused). Revoking a
        revoked key changes nothing and says when it was revoked."""
        with self._transaction() as curs:
            curs.execute(
                SQL(
                    "UPDATE {}.api_keys SET revoked_at = coalesce(revoked_at, now()) "
                    "WHERE key_id = %s "
                    "RETURNING key_id, tenant, role, name, created_at, revoked_at"
                ).format(Identifier(CONTROL_SCHEMA)),
                (key_id,),
            )
            r = curs.fetchone()
        if r is None:
            raise UnknownKey(key_id)
        return KeyRecord(
            r["key_id"], r["tenant"], Role(r["role"]), r["name"], r["created_at"], r["revoked_at"]
        )

    def authenticate(self, raw_key: str) -> Principal | None:
        """The principal of a live key; None for a malformed, unknown, revoked or
        wrong key (one answer for all, so a caller learns nothing from it)."""
        parts = split_key(raw_key)
        if parts is None:
            return None
        key_id, secret = parts
        with self._transaction() as curs:
            curs.execute(
                SQL(
                    "SELECT tenant, role, name, secret_sha256 FROM {}.api_keys "
                    "WHERE key_id = %s AND revoked_at IS NULL"
                ).format(Identifier(CONTROL_SCHEMA)),
                (key_id,),
            )
            row = curs.fetchone()
        stored = bytes(row["secret_sha256"]) if row else None
        if not secret_matches(secret, stored) or row is None:
            return None
        return Principal(
            tenant=row["tenant"], key_id=key_id, role=Role(row["role"]), name=row["name"]
        )


@cache
def control_store(database_url: str) -> ControlStore:
    """One store per database for the life of the process (the HTTP server's)."""
    return ControlStore(database_url)
