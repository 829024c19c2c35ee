"""The outbox relay: every event of the event store, published to NATS JetStream.

The relay reads the notification log (`billing_events`) in commit order from its
saved position and publishes each event to `billing.<aggregate>.<Event>` with
`Nats-Msg-Id` = its notification id. Why nothing is lost and nothing reaches a
consumer twice:

- Messages go out a window at a time (default 4,000), all in flight together;
  the position, kept in PostgreSQL (`relay_position`), moves only past messages
  whose ack arrived, and only over an unbroken run of them from the window's
  start. A failure (timeout, NATS down, an error ack) keeps the position where
  the acked run ends and retries the rest, with backoff, forever.
- The position is saved after the acks arrive, so a relay that dies in between
  publishes that window again when it restarts; the server drops the republished
  messages as duplicates of their `Nats-Msg-Id` (the stream's duplicate window,
  one hour, see `infrastructure.messaging.DUPLICATE_WINDOW_S`).
- The log is gapless in commit order (the library inserts under a table lock),
  so reading "after my position" never skips a transaction that commits later.

Order: the stream holds the events in commit order. A window cut short by a lost
connection was stored up to some message, in order (one connection, one stream);
the relay drops that connection with whatever nats-py still had buffered for it
and continues from the first message without an ack on a new one. The one case
left is the server refusing a single message (an error ack) while storing later
ones: the refused message then lands after them, still exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js.errors import BadRequestError
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from infrastructure.messaging import (
    DEFAULT_STREAMS,
    StreamNames,
    connect,
    ensure_streams,
    subject_for,
)
from infrastructure.nats_wire import NatsWireMismatch, require_nats_wire, send_hpub
from infrastructure.persistence import schema_lock

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 4000
"""Messages in flight at once. Each window ends with a wait for its last acks,
a third of the wall time with windows of 1,000 and a tenth with 4,000 (measured);
larger windows gained nothing measurable, cost memory, and mean more republished
(and dropped) after a crash. See docs/benchmarks.md."""
ACK_TIMEOUT_S = 10.0
"""A window with no ack for this long is given up and retried."""
POLL_INTERVAL_S = 0.2
"""How often a caught-up relay looks for new events."""
BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between retries of a failing window; the last repeats."""

_TICK_S = 0.1
# Let nats-py's flusher write (and the server start storing and acking) every so
# many messages, instead of after the whole window has been encoded.
_YIELD_EVERY = 512
_REPLAY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RelayError(Exception):
    """A problem the relay cannot retry its way out of."""


class RelayAlreadyRunning(RelayError):
    """Another relay holds the position of this stream."""


# The log --------------------------------------------------------------------------

RelayRow = tuple[int, str, int, str, bytes]
"""(notification id, originator id as text, version, topic, stored state)."""


class NotificationLog:
    """The events table, read the way the relay needs it: pages in commit order.

    Not `EventStoreQueries.notification_rows`: that returns dict rows turned into
    tuples with a `UUID` per row, which cost about 4 microseconds of CPU per event
    against 1 for plain tuples over the binary protocol with the originator id
    as text, which is all a header needs (measured over a bill run's log).
    """

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        self._page = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {}.{} WHERE notification_id >= %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(Identifier(self.datastore.schema), Identifier(recorder.events_table_name))

    def page(self, first: int, last: int, limit: int) -> list[RelayRow]:
        """Up to `limit` events with first <= notification id <= last, oldest first."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self._page, (first, last, limit), prepare=True)
            return curs.fetchall()

    def head(self) -> int:
        """The notification id of the last committed event (0 for an empty log)."""
        return self.recorder.max_notification_id() or 0


# Position -------------------------------------------------------------------------


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


# Messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outbound:
    """One event as a NATS message."""

    notification_id: int
    subject: str
    body: bytes
    headers: dict[str, str]
    header_block: bytes
    """`headers` encoded once, as NATS sends them (see `header_block`)."""


class Encoder:
    """Stored events to NATS messages, without rebuilding the pydantic events.

    The body is the event's JSON as the event store holds it (money as strings,
    dates ISO 8601) with `originator_id` and `originator_version` in front, i.e.
    the event's `model_dump(mode="json")`. The stored state is plain orjson JSON:
    billrun configures no cipher or compressor for its event store.
    """

    def __init__(self, subject_prefix: str) -> None:
        self._prefix = subject_prefix
        self._topics: dict[str, tuple[str, str]] = {}
        self._header_names: set[str] = set()
        """Header names `header_block` has checked for this encoder."""

    def encode(self, row: RelayRow, replay_id: str | None = None) -> Outbound:
        nid, originator_id, version, topic, state = row
        known = self._topics.get(topic)
        if known is None:
            known = self._topics[topic] = (
                subject_for(topic, self._prefix),
                topic.rpartition(":")[2],
            )
        subject, event = known
        payload: dict[str, Any] = orjson.loads(state)
        body = orjson.dumps(
            {"originator_id": originator_id, "originator_version": version, **payload}
        )
        nid_text = str(nid)
        headers = {
            "Nats-Msg-Id": nid_text if replay_id is None else f"{nid_text}:replay:{replay_id}",
            "Billrun-Notification-Id": nid_text,
            "Billrun-Aggregate-Id": originator_id,
            "Billrun-Aggregate-Version": str(version),
            "Billrun-Event": event,
        }
        timestamp = payload.get("timestamp")
        if isinstance(timestamp, str):
            headers["Billrun-Timestamp"] = timestamp
        run_id = payload.get("run_id")
        if isinstance(run_id, str):
            headers["Billrun-Run-Id"] = run_id
        if replay_id is not None:
            headers["Billrun-Replay-Id"] = replay_id
        return Outbound(nid, subject, body, headers, header_block(headers, self._header_names))


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NEWLINES_TO_SPACES = str.maketrans({"\r": " ", "\n": " "})


def header_block(headers: dict[str, str], valid_names: set[str] | None = None) -> bytes:
    """A NATS/1.0 header block, encoded the way nats-py's `publish` encodes headers.

    nats-py re-validates and re-encodes every header of every message (a strip, a
    regex match and a translate per header, then a bytearray extend per piece):
    15 of the relay's 38 microseconds per event. The relay's header names are
    fixed, and this builds the block in one join: 3 microseconds. Values keep
    nats-py's rule (trimmed, CR and LF become spaces), so an aggregate id can
    never inject a header.

    `valid_names` remembers the names already checked, so each is matched once
    per encoder (`Encoder` keeps its own) rather than once per message.
    """
    checked = set() if valid_names is None else valid_names
    for name in headers:
        if name not in checked:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"invalid NATS header name {name!r}")
            checked.add(name)
    lines = "".join([f"{name}: {value.strip().translate(_NEWLINES_TO_SPACES)}\r\n"
                     for name, value in headers.items()])  # fmt: skip
    return f"NATS/1.0\r\n{lines}\r\n".encode()


# Publishing a window -------------------------------------------------------------------


_PENDING, _STORED, _FAILED, _DUPLICATE = 0, 1, 2, 3


@dataclass(frozen=True)
class WindowOutcome:
    acked: int
    """Leading messages of the window the stream acknowledged (stored or duplicate)."""
    duplicates: int
    """Of those, the ones the server had already (dropped by their Nats-Msg-Id)."""
    error: str | None
    """Why the window stopped short, if it did."""


class AckWindow:
    """Publishes a window of messages at once and tallies the stream's acks.

    Each message carries its own reply subject, `<inbox>.<attempt>-<index>`, on one
    wildcard subscription, so an ack lands in its message's slot with no future or
    task per message, and answers to an abandoned attempt are recognised and
    ignored. nats-py 2.16's `js.publish_async` does the same job but its futures
    never time out, a publish that raises leaves a future and a semaphore permit
    behind for good, and its per-message bookkeeping (a random token, a future,
    stdlib JSON, a dataclass per ack) doubled the CPU per message when measured
    (53 against 27 microseconds).
    """

    def __init__(self, nc: NATS, stream: str) -> None:
        self._nc = nc
        self._stream = stream
        self._inbox = nc.new_inbox() + "."
        self._subscription: Subscription | None = None
        self._attempt = 0
        self._reply = ""  # reply prefix of the attempt being answered; "" for none
        self._answers = bytearray()
        self._answered = 0
        self._expected = 0
        self._error: str | None = None
        self._fatal: str | None = None
        self._complete = asyncio.Event()

    async def open(self) -> None:
        self._subscription = await self._nc.subscribe(self._inbox + "*", cb=self._on_answer)

    async def close(self) -> None:
        if self._subscription is not None and not self._nc.is_closed:
            with contextlib.suppress(NatsError):
                await self._subscription.unsubscribe()
        self._subscription = None

    async def publish(self, messages: Sequence[Outbound], ack_timeout: float) -> WindowOutcome:
        """Publish every message, then wait for their acks (or a failure)."""
        self._attempt += 1
        reply = self._reply = f"{self._inbox}{self._attempt}-"
        self._answers = answers = bytearray(len(messages))
        self._answered = 0
        self._expected = len(messages)
        self._error = None
        self._complete.clear()
        nc = self._nc
        sent = 0
        try:
            for message in messages:
                if not nc.is_connected:
                    # Publishing now would only fill nats-py's reconnect buffer.
                    self._fail("not connected to NATS")
                    break
                await send_hpub(
                    nc, message.subject, f"{reply}{sent}", message.header_block, message.body
                )
                sent += 1
                if sent % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except MaxPayloadError:
            message = messages[sent]
            raise RelayError(
                f"event {message.notification_id} is {len(message.body):,} bytes, more than "
                f"the server's max_payload ({nc.max_payload:,}); it can never be published"
            ) from None
        except NatsError as error:
            self._fail(f"publishing failed: {error!r}")
        self._expected = sent
        if self._answered >= sent:
            self._complete.set()
        await self._wait(ack_timeout)
        self._reply = ""
        if self._fatal is not None:
            raise RelayError(self._fatal)
        acked = _first_not_acked(answers)
        return WindowOutcome(acked, answers.count(_DUPLICATE, 0, acked), self._error)

    async def _wait(self, ack_timeout: float) -> None:
        quiet = 0.0
        seen = self._answered
        while self._answered < self._expected:
            if not self._nc.is_connected:
                # What was in flight went with the connection (or will be resent by
                # nats-py and then dropped as a duplicate of the retry).
                self._fail("the connection to NATS was lost")
                return
            try:
                await asyncio.wait_for(self._complete.wait(), _TICK_S)
            except TimeoutError:
                if self._answered != seen:
                    seen, quiet = self._answered, 0.0
                    continue
                quiet += _TICK_S
                if quiet >= ack_timeout:
                    missing = self._expected - self._answered
                    self._fail(f"no ack for {ack_timeout:g}s ({missing} outstanding)")
                    return

    async def _on_answer(self, msg: Msg) -> None:
        reply = self._reply
        subject = msg.subject
        if not reply or not subject.startswith(reply):
            return  # an answer to an abandoned attempt
        index = int(subject[len(reply) :])
        answers = self._answers
        if index >= len(answers) or answers[index] != _PENDING:
            return
        answers[index] = self._verdict(msg)
        self._answered += 1
        if self._answered >= self._expected:
            self._complete.set()

    def _verdict(self, msg: Msg) -> int:
        if not msg.data:
            # A status message: 503 when no stream listens on the subject.
            status = (msg.headers or {}).get("Status", "?")
            self._fail(f"no stream answered (status {status}); is the stream there?")
            return _FAILED
        try:
            ack = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            self._fail(f"unreadable ack: {msg.data[:200]!r}")
            return _FAILED
        if "error" in ack:
            self._fail(f"the server refused a message: {ack['error']}")
            return _FAILED
        if ack.get("stream") != self._stream:
            # Retrying would store it there again and again: a configuration error.
            self._fatal = (
                f"the server stored notification messages in stream {ack.get('stream')!r}, "
                f"not {self._stream!r}: another stream captures their subjects"
            )
            self._fail(self._fatal)
            return _FAILED
        return _DUPLICATE if ack.get("duplicate") else _STORED

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason


def _first_not_acked(answers: bytearray) -> int:
    """The length of the leading run of stored-or-duplicate answers."""
    ends = [i for i in (answers.find(_PENDING), answers.find(_FAILED)) if i >= 0]
    return min(ends) if ends else len(answers)


# The relay ------------------------------------------------------------------------------


@dataclass
class RelayOutcome:
    published: int = 0
    """Messages the stream acknowledged."""
    duplicates: int = 0
    """Of those, the ones the server dropped as already stored (a restarted relay's
    republished tail, or a repeated replay id)."""
    retries: int = 0
    """Failed attempts retried: a window (or its rest) to publish again, or a
    connection to NATS to make again."""
    position: int = 0
    """The last notification id acknowledged, in log order."""
    head: int = 0
    seconds: float = 0.0
    replay_id: str | None = None
    first: int = 0
    _started: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "published": self.published,
            "duplicates": self.duplicates,
            "retries": self.retries,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "seconds": round(self.seconds, 3),
        }
        if self.replay_id is not None:
            shown = {"replay_id": self.replay_id, "from": self.first, "to": self.head, **shown}
            del shown["lag"]
        return shown


class Relay:
    """Publishes the notification log to a JetStream stream, from a saved position.

    `source` reads the log, `positions` keeps the position; the relay connects to
    `nats_url` itself and, when the connection drops, throws it away and connects
    afresh (waiting out the outage with backoff) instead of letting nats-py
    reconnect: nats-py would resend what it still had buffered after messages of
    the same window that were lost with the connection, out of order. With a
    fresh connection what the server stored of a window is a prefix of it, and
    the retry continues that prefix in order (the stored part is dropped as
    duplicates).

    The streams are declared (`ensure_streams`) on the first connection only:
    a stream that disappears later is waited out like an outage, never quietly
    created again without its history.
    """

    def __init__(
        self,
        source: NotificationLog,
        positions: RelayPositions,
        nats_url: str,
        names: StreamNames = DEFAULT_STREAMS,
        *,
        window: int = DEFAULT_WINDOW,
        ack_timeout: float = ACK_TIMEOUT_S,
        poll_interval: float = POLL_INTERVAL_S,
        backoff: Sequence[float] = BACKOFF_S,
        declare_streams: bool = True,
        connection_name: str = "billrun-relay",
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        try:
            # Before anything connects: the wire shortcut must match the nats-py it
            # was written for (see infrastructure/nats_wire.py).
            require_nats_wire()
        except NatsWireMismatch as error:
            raise RelayError(str(error)) from None
        self.source = source
        self.positions = positions
        self.nats_url = nats_url
        self.names = names
        self.window = window
        self.ack_timeout = ack_timeout
        self.poll_interval = poll_interval
        self.backoff = tuple(backoff)
        self.declare_streams = declare_streams
        self.connection_name = connection_name
        self.position = 0
        """The saved position, as of the last window."""
        self._encoder = Encoder(names.subject_prefix)
        self._nc: NATS | None = None
        self._ack_window: AckWindow | None = None

    async def run(self, stop: asyncio.Event | None = None, follow: bool = False) -> RelayOutcome:
        """Publish from the saved position up to the head, or (`follow`) on and on,
        waiting for new events, until `stop` is set.

        Stopping is graceful: the window in flight is finished (acked or given
        up) and its position saved. Raises `RelayAlreadyRunning` if another relay
        holds this stream, `RelayError` on a failure no retry can fix.
        """
        stop = stop or asyncio.Event()
        stream = self.names.stream
        with self.positions.exclusive(stream):
            self.position, _ = await asyncio.to_thread(self.positions.get, stream)
            outcome = RelayOutcome(position=self.position)
            try:
                while not stop.is_set():
                    head = await asyncio.to_thread(self.source.head)
                    outcome.head = max(head, outcome.head)
                    if head > self.position:
                        log.info(
                            "relay %s: publishing %d..%d (%d events)",
                            stream, self.position + 1, head, head - self.position,
                        )  # fmt: skip
                        await self._publish_range(self.position + 1, head, stop, outcome)
                    elif follow:
                        await _sleep_unless(stop, self.poll_interval)
                    if not follow:
                        break
            finally:
                await self._disconnect()
        outcome.seconds = time.perf_counter() - outcome._started
        return outcome

    async def replay(
        self,
        first: int,
        last: int | None = None,
        replay_id: str | None = None,
        stop: asyncio.Event | None = None,
    ) -> RelayOutcome:
        """Publish notifications `first`..`last` (default: the head) again, for a
        subscriber that needs history. The position does not move.

        Each message's `Nats-Msg-Id` is `<nid>:replay:<replay id>`, so the server
        keeps them (they are not duplicates of the first publication); repeating a
        replay with the same id within the duplicate window publishes nothing
        twice, which makes an interrupted replay resumable.
        """
        replay_id = replay_id or secrets.token_hex(4)
        if not _REPLAY_ID.fullmatch(replay_id):
            raise RelayError(f"replay id {replay_id!r}: use 1-64 letters, digits, '-' or '_'")
        head = await asyncio.to_thread(self.source.head)
        last = head if last is None else min(last, head)
        if first < 1 or first > last:
            raise RelayError(
                f"nothing to replay from {first} to {last}: the log holds 1..{head}"
                if head
                else "nothing to replay: the log is empty"
            )
        outcome = RelayOutcome(replay_id=replay_id, first=first, head=last)
        try:
            await self._publish_range(first, last, stop or asyncio.Event(), outcome, replay_id)
        finally:
            await self._disconnect()
        outcome.seconds = time.perf_counter() - outcome._started
        return outcome

    async def _publish_range(
        self,
        first: int,
        last: int,
        stop: asyncio.Event,
        outcome: RelayOutcome,
        replay_id: str | None = None,
    ) -> None:
        """Publish notifications first..last a window at a time; the next page is
        read in a thread while this window is in flight.

        Encoding stays on the event loop's thread: in a second thread it would only
        contend for the GIL with the loop (measured: no faster).
        """
        encode = self._encoder.encode
        page = self.source.page
        size = self.window
        reading: asyncio.Future[list[RelayRow]] | None = asyncio.ensure_future(
            asyncio.to_thread(page, first, last, size)
        )
        try:
            while reading is not None:
                rows = await reading
                reading = None
                if not rows:
                    return
                after = rows[-1][0]
                if after < last:
                    reading = asyncio.ensure_future(asyncio.to_thread(page, after + 1, last, size))
                messages = [encode(row, replay_id) for row in rows]
                if not await self._deliver(messages, stop, outcome, replay_id):
                    return
                if stop.is_set():
                    return
        finally:
            if reading is not None:
                # A thread cannot be cancelled: let the read finish, drop its rows.
                with contextlib.suppress(Exception):
                    await reading

    async def _deliver(
        self,
        messages: list[Outbound],
        stop: asyncio.Event,
        outcome: RelayOutcome,
        replay_id: str | None,
    ) -> bool:
        """Publish one window until every message is acked; False if stopped first.

        The position moves (and is saved) past each unbroken run of acked messages,
        never past a message without an ack.
        """
        started = time.perf_counter()
        done = failures = duplicates = 0
        while True:
            window = await self._connected(stop, outcome)
            if window is None:
                return False
            result = await window.publish(messages[done:] if done else messages, self.ack_timeout)
            if result.acked:
                done += result.acked
                outcome.published += result.acked
                outcome.duplicates += result.duplicates
                duplicates += result.duplicates
                reached = messages[done - 1].notification_id
                outcome.position = reached
                if replay_id is None:
                    await asyncio.to_thread(self.positions.save, self.names.stream, reached)
                    self.position = reached
                failures = 0
            if done == len(messages):
                seconds = time.perf_counter() - started
                self._log_window(len(messages), duplicates, outcome, replay_id, seconds)
                return True
            failures += 1
            outcome.retries += 1
            delay = self._delay(failures)
            log.warning(
                "relay %s: %s; %d of %d events of the window acknowledged, position %d; "
                "retrying in %.1fs",
                self.names.stream, result.error, done, len(messages), outcome.position, delay,
            )  # fmt: skip
            if await _sleep_unless(stop, delay):
                return False

    async def _connected(self, stop: asyncio.Event, outcome: RelayOutcome) -> AckWindow | None:
        """The ack window of a live connection, connecting (again) as long as it
        takes; None if `stop` is set first."""
        if self._nc is not None and self._nc.is_connected and self._ack_window is not None:
            return self._ack_window
        await self._disconnect()
        failures = 0
        while not stop.is_set():
            nc: NATS | None = None
            try:
                # nats-py tries twice inside `connect`; the pacing is ours (backoff).
                nc = await connect(
                    self.nats_url, self.connection_name, reconnect=False, reconnect_time_wait=0.1
                )
                if self.declare_streams:
                    await ensure_streams(nc.jetstream(), self.names)
                    self.declare_streams = False
                window = AckWindow(nc, self.names.stream)
                await window.open()
            except BadRequestError as error:
                # The server refuses the streams' configuration: no retry fixes that.
                if nc is not None:
                    with contextlib.suppress(NatsError, OSError):
                        await nc.close()
                raise RelayError(f"cannot declare stream {self.names.stream}: {error}") from None
            except (NatsError, OSError, TimeoutError) as error:
                if nc is not None:
                    with contextlib.suppress(NatsError, OSError):
                        await nc.close()
                failures += 1
                outcome.retries += 1
                delay = self._delay(failures)
                log.warning(
                    "relay %s: cannot use NATS at %s (%s); retrying in %.1fs",
                    self.names.stream, self.nats_url, error or type(error).__name__, delay,
                )  # fmt: skip
                if await _sleep_unless(stop, delay):
                    return None
                continue
            self._nc, self._ack_window = nc, window
            return window
        return None

    async def _disconnect(self) -> None:
        # Closing a connection that is down drops what nats-py still had buffered
        # for it: those messages are republished, in order, on the next connection.
        if self._ack_window is not None:
            await self._ack_window.close()
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(NatsError, OSError):
                await self._nc.close()
        self._nc = self._ack_window = None

    def _delay(self, failures: int) -> float:
        return self.backoff[min(failures, len(self.backoff)) - 1]

    def _log_window(
        self,
        count: int,
        duplicates: int,
        outcome: RelayOutcome,
        replay_id: str | None,
        seconds: float,
    ) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        rate = count / seconds if seconds > 0 else 0.0
        if replay_id is None:
            log.info(
                "relay %s: published %d events (%d dropped as duplicates), position %d, "
                "head %d, lag %d (%.0f events/s)",
                self.names.stream, count, duplicates, outcome.position, outcome.head,
                outcome.lag, rate,
            )  # fmt: skip
        else:
            log.info(
                "relay %s: replay %s published %d events, up to %d of %d..%d (%.0f events/s)",
                self.names.stream, replay_id, count, outcome.position, outcome.first,
                outcome.head, rate,
            )  # fmt: skip


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, or return early when `stop` is set; True if it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


__all__ = [
    "ACK_TIMEOUT_S",
    "DEFAULT_WINDOW",
    "AckWindow",
    "Encoder",
    "NotificationLog",
    "Outbound",
    "Relay",
    "RelayAlreadyRunning",
    "RelayError",
    "RelayOutcome",
    "RelayPositions",
    "RelayStatus",
    "relay_status",
]
