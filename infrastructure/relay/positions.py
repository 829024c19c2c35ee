"""Where the relay of each stream stands: its saved position and its status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Composed, Identifier

from infrastructure.persistence import schema_lock
from infrastructure.relay.errors import RelayAlreadyRunning
from infrastructure.relay.log import NotificationLog


class RelayPositions:
    """The relay's position per stream: the last notification id whose message the
    stream acknowledged, in the table `relay_position` beside the events."""

    def __init__(self, datastore: PostgresDatastore, table: str = "relay_position") -> None:
        self.datastore = datastore
        self.table = table
        self._table = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(table))

    def create_table(self) -> None:
        """Create the table if it is missing (idempotent, one process at a time)."""
        statement = SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "stream text PRIMARY KEY, "
            "position bigint NOT NULL, "
            "updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(self._table)
        with (
            schema_lock(self.datastore, self.table),
            self.datastore.transaction(commit=True) as curs,
        ):
            curs.execute(statement)

    def get(self, stream: str) -> tuple[int, datetime | None]:
        """The position (0 before the first save) and when it was saved."""
        statement: Composed = SQL("SELECT position, updated_at FROM {} WHERE stream = %s").format(
            self._table
        )
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement, (stream,))
            row = curs.fetchone()
        return (int(row["position"]), row["updated_at"]) if row else (0, None)

    def save(self, stream: str, position: int) -> None:
        # GREATEST: should two relays ever overlap (the advisory lock goes with its
        # session, e.g. when PostgreSQL restarts), the position still never moves back.
        statement: Composed = SQL(
            "INSERT INTO {0} AS t (stream, position) VALUES (%s, %s) "
            "ON CONFLICT (stream) DO UPDATE "
            "SET position = GREATEST(t.position, EXCLUDED.position), updated_at = now()"
        ).format(self._table)
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(statement, (stream, position), prepare=True)

    @contextlib.contextmanager
    def exclusive(self, stream: str) -> Iterator[None]:
        """Hold the stream's relay lock (a session advisory lock) for the block.

        Two relays on one stream would not lose or duplicate anything (the server
        drops the second copy of each message), but they would do all the work
        twice: the second is refused instead. The lock goes with the session, so
        a relay that is killed releases it at once.
        """
        key = f"billrun-relay:{self.datastore.schema}.{stream}"
        with self.datastore.get_connection() as conn:  # autocommit: a session lock
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (key,)).fetchone()
            if not row or not row["ok"]:
                raise RelayAlreadyRunning(
                    f"another relay is publishing to stream {stream}; stop it first"
                )
            try:
                yield
            finally:
                # Best effort: if the session is gone, so is the lock.
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


@dataclass(frozen=True)
class RelayStatus:
    stream: str
    position: int
    head: int
    updated_at: datetime | None

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def relay_status(source: NotificationLog, positions: RelayPositions, stream: str) -> RelayStatus:
    """Where the relay of `stream` stands against the log's head (no NATS needed)."""
    position, updated_at = positions.get(stream)
    return RelayStatus(stream, position, source.head(), updated_at)
