"""Event store wiring: the pydantic mapper, the orjson transcoder, and the
environment that points the eventsourcing library at PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import get_topic, resolve_topic, retry
from psycopg import Cursor, InterfaceError, OperationalError
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from pydantic import BaseModel


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson: the event's own JSON form, nothing library-specific."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[Any]):
    """Stores frozen pydantic events as their `model_dump(mode="json")`.

    Decimals become strings, dates ISO 8601, so the stored state is exactly the
    JSON an auditor or a NATS subscriber sees. Rebuilding validates the state
    against the event class named by the topic, so Decimal survives exactly.
    """

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        model = cast(BaseModel, domain_event)
        state = model.model_dump(mode="json", exclude={"originator_id", "originator_version"})
        stored_state = self.transcoder.encode(state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        return cast(
            DomainEventProtocol[Any],
            resolve_topic(stored_event.topic)(
                originator_id=stored_event.originator_id,
                originator_version=stored_event.originator_version,
                **self.decode_state(stored_event.state),
            ),
        )

    def decode_state(self, state: bytes) -> dict[str, Any]:
        """The JSON payload of a stored event, as a dict."""
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return cast(dict[str, Any], self.transcoder.decode(state))


def eventsourcing_environment(database_url: str) -> dict[str, str]:
    """The library's configuration (its own variable names) for one database URL."""
    params = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname") or "billrun"),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "4",
        # Waiting for the events table lock is normal when runs race; a bounded
        # wait turns a stuck writer into an error instead of a hang.
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "60",
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "APPLICATION_RECORDER_TOPIC": get_topic(ArrayInsertRecorder),
    }


@contextlib.contextmanager
def schema_lock(datastore: PostgresDatastore, name: str) -> Iterator[None]:
    """Hold a session advisory lock named after `name` while creating its tables.

    Every billrun process creates its schema when it starts, and DDL is not safe
    to run concurrently: the second of two processes would fail on a duplicate
    type or catalog row instead of finding the tables there.
    """
    key = f"billrun-schema:{datastore.schema}.{name}"
    with datastore.get_connection() as conn:  # autocommit: a session-level lock
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


class ForgedEventError(Exception):
    """A stored event the audit seal would reject, refused before it is acted on."""


def refuse_forged(notification_id: int, originator_id: UUID, version: int) -> None:
    """Refuse an event with a notification id below 1.

    The library's insert never writes one (ids come from an identity column that
    starts at 1), and `audit verify` reports every such row as inserted; loading it
    would let a forged event (say an `AutoPaySet` naming someone else's card) steer
    the application before anyone verifies. The id is on the row being read
    anyway, so the check costs nothing.
    """
    if notification_id < 1:
        raise ForgedEventError(
            f"refusing to load version {version} of aggregate {originator_id}: it is "
            f"stored at notification id {notification_id}, which billrun never writes "
            "(an event inserted behind its back); run `billrun audit verify`"
        )


class ArrayInsertRecorder(PostgresApplicationRecorder):
    """The library's application recorder, inserting a batch as four binary arrays.

    The library sends a batch as an array of a composite type in text format,
    which escapes every `bytea` state with a regex in Python: at bill-run batch
    sizes that escaping is the largest single cost of a save. `unnest` over four
    binary-encoded arrays inserts the same rows, in the same order, under the
    same table lock and in the same transaction, so the library's guarantees
    (gapless commit order, optimistic concurrency, RETURNING the notification
    ids) are unchanged.
    """

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self._insert_arrays_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )

    def create_table(self) -> None:
        """The library's schema creation, one process at a time.

        Every process creates the schema when it starts, and the library's DDL is
        not safe to run concurrently: two processes starting together make one fail
        with "tuple concurrently updated" (CREATE OR REPLACE FUNCTION) or a
        duplicate-key error (CREATE TYPE). A session advisory lock, keyed on the
        table, makes the others wait and then find the schema already there.
        """
        with schema_lock(self.datastore, self.events_table_name):
            super().create_table()

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_arrays_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The library's query (`SELECT *` by originator), refusing forged rows."""
        statement = self.select_events_statement
        params: list[Any] = [originator_id]
        if gt is not None:
            params.append(gt)
            statement += SQL(" AND originator_version > %s")
        if lte is not None:
            params.append(lte)
            statement += SQL(" AND originator_version <= %s")
        statement += SQL(" ORDER BY originator_version")
        statement += SQL(" DESC") if desc else SQL(" ASC")
        if limit is not None:
            params.append(limit)
            statement += SQL(" LIMIT %s")
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            rows = curs.fetchall()
        for row in rows:
            refuse_forged(row["notification_id"], row["originator_id"], row["originator_version"])
        return [
            StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            for row in rows
        ]
