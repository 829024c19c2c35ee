"""The relay itself: the loop that publishes the log window by window, resuming from
its saved position, and replays a range under a replay id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import BadRequestError

from infrastructure.contract import OPENERS
from infrastructure.messaging import (
    DEFAULT_STREAMS,
    NamespaceConflict,
    StreamNames,
    connect,
    ensure_streams,
)
from infrastructure.nats_wire import NatsWireMismatch, require_nats_wire
from infrastructure.relay.encoder import Encoder, Outbound
from infrastructure.relay.errors import RelayError
from infrastructure.relay.log import NotificationLog, RelayRow
from infrastructure.relay.positions import RelayPositions
from infrastructure.relay.window import AckWindow
from infrastructure.topics import STORED_TOPICS

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

_REPLAY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class RelayOutcome:
    published: int = 0
    """Messages the stream acknowledged."""
    skipped: int = 0
    """Events read from the log that have no public form (not published)."""
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
            "skipped": self.skipped,
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
        opening_topics = sorted(STORED_TOPICS[name] for name in OPENERS)
        self._encoder = Encoder(
            names.subject_prefix,
            names.source,
            lambda ids: source.openings(ids, opening_topics),
        )
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
                # Connect (and check the streams belong to this deployment) at start,
                # even with nothing to publish: a conflict is refused at once.
                await self._connected(stop, outcome)
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
                self._encoder.prepare(rows)
                messages = [m for row in rows if (m := encode(row, replay_id)) is not None]
                outcome.skipped += len(rows) - len(messages)
                if not await self._deliver(messages, after, stop, outcome, replay_id):
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
        through: int,
        stop: asyncio.Event,
        outcome: RelayOutcome,
        replay_id: str | None,
    ) -> bool:
        """Publish one window (the public events of notifications up to `through`)
        until every message is acked; False if stopped first.

        The position moves (and is saved) past each unbroken run of acked messages,
        never past a message without an ack; once all are acked, to `through`
        (events without a public form in between have nothing to publish).
        """
        started = time.perf_counter()
        done = failures = duplicates = 0
        if not messages:
            await self._advance(through, outcome, replay_id)
            return True
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
                reached = through if done == len(messages) else messages[done - 1].notification_id
                await self._advance(reached, outcome, replay_id)
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

    async def _advance(self, reached: int, outcome: RelayOutcome, replay_id: str | None) -> None:
        outcome.position = reached
        if replay_id is None:
            await asyncio.to_thread(self.positions.save, self.names.stream, reached)
            self.position = reached

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
            except NamespaceConflict as error:
                if nc is not None:
                    with contextlib.suppress(NatsError, OSError):
                        await nc.close()
                raise RelayError(str(error)) from None
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
