"""Event store wiring: the pydantic mapper, the orjson transcoder, and the
environment that points the eventsourcing library at PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    InterfaceError,
    Mapper,
    OperationalError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import get_topic, resolve_topic, retry
from psycopg import Cursor, errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from pydantic import BaseModel

from infrastructure.settings import DEFAULT_LOCK_TIMEOUT
from infrastructure.tenancy.actor import current_principal
from infrastructure.topics import event_classes_by_topic, topic_of


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson: the event's own JSON form, nothing library-specific."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


ACTOR_KEY = "_actor"
"""In a stored state: who stored the event (`Principal.actor()`: key id, role, name).
Absent from events stored before it existed, or outside `acting_as`."""


class PydanticMapper(Mapper[Any]):
    """Stores frozen pydantic events as their `model_dump(mode="json")`.

    Decimals become strings, dates ISO 8601, so the stored state is exactly the
    JSON an auditor or a NATS subscriber sees. Rebuilding validates the state
    against the event class named by the topic, so Decimal survives exactly.
    """

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        model = cast(BaseModel, domain_event)
        state = model.model_dump(mode="json", exclude={"originator_id", "originator_version"})
        # The library's convention (its own Mapper does the same): a stored event
        # records its class version from 2 on; version 1 is the key's absence.
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        # Who wrote it (Kill Bill's created_by), beside the state like the class
        # version: metadata of the recording, not part of the fact, so stripped
        # again before the event is rebuilt (`to_domain_event`).
        principal = current_principal()
        if principal is not None:
            state[ACTOR_KEY] = principal.actor()
        stored_state = self.transcoder.encode(state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=topic_of(type(domain_event)),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        event_class = _event_class(stored_event.topic)
        state = self.decode_state(stored_event.state)
        state.pop(ACTOR_KEY, None)
        state = upcast(event_class, state)
        return cast(
            DomainEventProtocol[Any],
            event_class(
                originator_id=stored_event.originator_id,
                originator_version=stored_event.originator_version,
                **state,
            ),
        )

    def decode_state(self, state: bytes) -> dict[str, Any]:
        """The JSON payload of a stored event, as a dict."""
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return cast(dict[str, Any], self.transcoder.decode(state))


def upcast(event_class: Any, state: dict[str, Any]) -> dict[str, Any]:
    """A stored event's state brought up to its class's version, one step at a
    time (`upcast_v1_v2`, ...), as the library's Mapper does."""
    class_version = getattr(event_class, "class_version", 1)
    from_version = state.pop("class_version", 1)
    while from_version < class_version:
        getattr(event_class, f"upcast_v{from_version}_v{from_version + 1}")(state)
        from_version += 1
    return state


def _event_class(topic: str) -> Any:
    """The class that rebuilds events stored under `topic` (the frozen table first)."""
    event_class = event_classes_by_topic().get(topic)
    return event_class if event_class is not None else resolve_topic(topic)


STATEMENT_TIMEOUT = 600
"""Seconds any one statement may run: billrun reads and writes in pages, so only a
server that is stuck (or a statement waiting on something other than a lock)
gets near it."""


class DatabaseBusy(Exception):
    """PostgreSQL made billrun wait longer than its bounded waits allow; the message
    names the sessions holding the locks, so an operator can find them."""


def eventsourcing_environment(
    database_url: str, lock_timeout: int = DEFAULT_LOCK_TIMEOUT, schema: str = ""
) -> dict[str, str]:
    """The library's configuration (its own variable names) for one database URL
    and one tenant's schema ("": `public`, the default tenant's)."""
    params = conninfo_to_dict(database_url)
    tenant = {"POSTGRES_SCHEMA": schema} if schema else {}
    return {
        **tenant,
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname") or "billrun"),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "4",
        # Waiting for the events table lock is normal when runs race; a bounded
        # wait turns a stuck writer into an error instead of a hang. Every other
        # statement gets the same bound (`bound_waits`).
        "POSTGRES_LOCK_TIMEOUT": str(lock_timeout),
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


def bound_waits(datastore: PostgresDatastore) -> None:
    """Bound every wait of the datastore's connections and make a timeout final.

    The library sets a lock timeout only on its insert, and retries any
    `OperationalError` ten times: a locked events table made reads wait forever
    and writes fail only after ten lock timeouts, with a raw traceback. Here every
    connection gets the lock timeout and a statement timeout (libpq `options`, set
    before the pool opens its first connection), and a timeout leaves
    `get_connection` as `DatabaseBusy` naming the blockers, which the library's
    retries do not catch. (`get_connection` is replaced on this one instance: the
    library builds the datastore itself, from the environment.)
    """
    if getattr(datastore, "_billrun_bounded", False):
        return
    options = f"-c lock_timeout={datastore.lock_timeout}s -c statement_timeout={STATEMENT_TIMEOUT}s"
    kwargs = datastore.pool.kwargs
    if isinstance(kwargs, dict):
        kwargs["options"] = f"{kwargs.get('options', '')} {options}".strip()
    original = datastore.get_connection

    @contextlib.contextmanager
    def get_connection() -> Iterator[Any]:
        try:
            with original() as conn:
                yield conn
        except OperationalError as error:
            cause = error.__cause__
            if isinstance(cause, errors.LockNotAvailable | errors.QueryCanceled):
                raise DatabaseBusy(_busy_message(original, cause, datastore)) from error
            raise

    datastore.get_connection = get_connection  # type: ignore[method-assign]
    datastore._billrun_bounded = True  # type: ignore[attr-defined]


_BLOCKERS = """
SELECT a.pid, a.usename, a.application_name, a.state, l.mode,
       l.relation::regclass::text AS relation,
       extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::int AS seconds,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60) AS query
FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE l.granted AND l.locktype = 'relation' AND a.pid <> pg_backend_pid()
  AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY a.xact_start NULLS LAST LIMIT 3
"""


def _busy_message(
    connect: Callable[[], contextlib.AbstractContextManager[Any]],
    cause: Exception,
    datastore: PostgresDatastore,
) -> str:
    if isinstance(cause, errors.LockNotAvailable):
        what = (
            f"waited longer than the lock timeout ({datastore.lock_timeout} s, "
            "BILLRUN_LOCK_TIMEOUT) for a table another session holds"
        )
    else:
        what = f"a statement ran longer than the statement timeout ({STATEMENT_TIMEOUT} s)"
    # Naming the blockers is a courtesy: if that fails too, the timeout is the error.
    try:
        with connect() as conn:
            rows = conn.execute(_BLOCKERS).fetchall()
    except Exception:
        rows = []
    if rows:
        held = "; ".join(
            f"pid {r['pid']} ({r['application_name'] or 'no application name'}, user "
            f"{r['usename']}, {r['state']} for {r['seconds']} s: {r['query']!r}) holds "
            f"{r['mode']} on {r['relation']}"
            for r in rows
        )
        who = f"{held}. End it, or wait for it (SELECT pg_terminate_backend(pid) ends one)"
    else:
        who = "no session holds a strong lock any more: try again"
    return (
        f"PostgreSQL is busy: billrun {what}. {who}. Nothing was half-written; "
        "it is safe to re-run."
    )


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
        bound_waits(datastore)
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
