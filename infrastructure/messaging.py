"""NATS JetStream, billrun's side of it: which server, which streams, which subjects.

Every public event of the event store is published (by `infrastructure.relay`) to
the stream ``<PREFIX>`` on the subject ``<prefix>.<aggregate>.<Event>``; consumers
that give up on a message park it on ``<PREFIX>_DLQ`` (``<prefix>-dlq.>``). The
prefix is BILLRUN_NATS_PREFIX (default ``billing``: stream ``BILLING``), so several
deployments share one NATS server without touching each other's streams. Each
stream records the deployment it belongs to (BILLRUN_SOURCE) in its description,
and a deployment with another source is refused rather than allowed to publish
into it (its message ids would collide). PostgreSQL stays the source of truth:
both streams can be refilled from the event store.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from infrastructure.settings import Settings

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_S = 3600.0
"""How long the server remembers a `Nats-Msg-Id` and drops a republish of it.

The relay saves its position after a window's acks arrive, so a relay that dies
in between republishes at most that one window (a few thousand events) when it
starts again. An hour covers a restart by a supervisor, a redeploy or an
operator's intervention; past it, the republished window reaches consumers a
second time, which they tolerate (they are idempotent). The cost of a longer
window is server memory: one id per message published within it (a
100,000-account bill run publishes about 400,000 events, tens of MB of ids).
"""


@dataclass(frozen=True)
class StreamNames:
    """The streams, subject prefixes and durable names of one deployment, and its
    source (the deployment id in every message id); tests inject unique ones."""

    stream: str = "BILLING"
    subject_prefix: str = "billing"
    dead_letter_stream: str = "BILLING_DLQ"
    dead_letter_prefix: str = "billing-dlq"
    source: str = "billrun"
    """BILLRUN_SOURCE: recorded in the streams' description, checked at start."""
    durable_prefix: str = "billrun"
    """Durable consumer names are `<durable_prefix>-<consumer>`."""

    @classmethod
    def for_prefix(cls, prefix: str, source: str) -> StreamNames:
        """Every name derived from BILLRUN_NATS_PREFIX: `billing` gives stream
        `BILLING`, `BILLING_DLQ` on `billing-dlq.>`, durables `billrun-<consumer>`
        (the names billrun used before the prefix existed, so an upgraded deployment
        keeps its streams and its consumers' positions); `acme` gives `ACME`,
        `ACME_DLQ` on `acme-dlq.>` and durables `billrun-acme-<consumer>`."""
        stream = prefix.upper().replace("-", "_")
        return cls(
            stream=stream,
            subject_prefix=prefix,
            dead_letter_stream=f"{stream}_DLQ",
            dead_letter_prefix=f"{prefix}-dlq",
            source=source,
            durable_prefix="billrun" if prefix == "billing" else f"billrun-{prefix}",
        )


DEFAULT_STREAMS = StreamNames()


class NamespaceConflict(Exception):
    """The stream of this prefix belongs to another deployment (another source)."""


_SOURCE_IN_DESCRIPTION = re.compile(r"\(source ([^)\s]+)\)$")


def stream_names(settings: Settings) -> StreamNames:
    """The names of this deployment's streams, from BILLRUN_NATS_PREFIX and BILLRUN_SOURCE."""
    return StreamNames.for_prefix(settings.nats_prefix, settings.source)


def subject_for(topic: str, prefix: str = "billing") -> str:
    """The subject an event is published on, from its topic.

    ``domain.invoice:InvoiceClosed`` -> ``billing.invoice.InvoiceClosed``; the
    aggregate is the event's module name without underscores
    (``domain.bill_run:RunStarted`` -> ``billing.billrun.RunStarted``), the same
    name `billrun history` shows.
    """
    module, _, event = topic.partition(":")
    if not module or not event or "." in event:
        raise ValueError(f"not an event topic: {topic!r} (expected 'package.module:Event')")
    aggregate = module.rsplit(".", 1)[-1].replace("_", "")
    return f"{prefix}.{aggregate}.{event}"


def events_stream_config(names: StreamNames = DEFAULT_STREAMS) -> StreamConfig:
    return _durable_stream(
        names.stream,
        f"billrun: public events of the event store, in commit order (source {names.source})",
        names.subject_prefix,
    )


def dead_letter_stream_config(names: StreamNames = DEFAULT_STREAMS) -> StreamConfig:
    # Dead letters carry a per-consumer, per-sequence msg id: a message
    # dead-lettered twice (a crash before its ack) is kept once.
    return _durable_stream(
        names.dead_letter_stream,
        f"billrun: messages consumers gave up on, with the reason (source {names.source})",
        names.dead_letter_prefix,
    )


def _durable_stream(name: str, description: str, subject_prefix: str) -> StreamConfig:
    """A stream of every subject under `subject_prefix`. On disk: the stream
    outlives a server restart, and with it the record of recent message ids
    that makes a republish harmless."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=[f"{subject_prefix}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_streams(js: JetStreamContext, names: StreamNames = DEFAULT_STREAMS) -> None:
    """Create the events and dead-letter streams, or bring them to this configuration.

    Idempotent; safe to call from every process at start-up. A change the server
    refuses (e.g. file to memory storage) raises `nats.js.errors.BadRequestError`;
    a stream that records another source raises `NamespaceConflict` before anything
    is changed (a stream from before sources existed is adopted).
    """
    configs = (events_stream_config(names), dead_letter_stream_config(names))
    for config in configs:
        assert config.name is not None
        with contextlib.suppress(NotFoundError):
            info = await js.stream_info(config.name)
            _require_same_source(config.name, info.config.description, names)
    for config in configs:
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                log.info("created stream %s (%s)", config.name, ", ".join(config.subjects or []))
                continue
            except BadRequestError:
                # Another process created it between the two calls: update below.
                pass
        await js.update_stream(config)


def _require_same_source(stream: str, description: str | None, names: StreamNames) -> None:
    found = _SOURCE_IN_DESCRIPTION.search(description or "")
    if found and found.group(1) != names.source:
        raise NamespaceConflict(
            f"stream {stream} (subjects {names.subject_prefix}.>) belongs to deployment "
            f"{found.group(1)}, and this one is {names.source}: publishing into it would "
            "collide message ids and lose events. Give this deployment its own "
            "BILLRUN_NATS_PREFIX, or set BILLRUN_SOURCE="
            f"{found.group(1)} if it is the same deployment (e.g. its database moved)"
        )


@contextlib.contextmanager
def nats_url(settings: Settings) -> Iterator[str]:
    """BILLRUN_NATS_URL if set; otherwise an embedded nats-server under BILLRUN_HOME,
    stopped again when the block ends (if this process started it)."""
    if settings.nats_url:
        yield settings.nats_url
        return
    from infrastructure.embedded import embedded_nats

    with embedded_nats(settings.home) as url:
        yield url


async def connect(
    url: str, name: str = "billrun", *, reconnect: bool = True, reconnect_time_wait: float = 1.0
) -> NATS:
    """A connection to `url`, logging when it drops.

    With `reconnect` (for subscribers), nats-py reconnects for ever, every
    `reconnect_time_wait` seconds, and the first connection waits for the server
    the same way. Without it, the first connection fails after two attempts if
    the server is not there and a dropped connection closes for good: for a
    publisher that reconnects by itself (see `infrastructure.relay.Relay`).
    """
    nc = NATS()

    async def disconnected() -> None:
        if reconnect and not nc.is_closed:  # closing on purpose calls this too
            log.warning("NATS: disconnected from %s; reconnecting", url)

    async def reconnected() -> None:
        log.warning("NATS: reconnected to %s", url)

    async def error(exc: Exception) -> None:
        # Without `reconnect`, a failure to connect is the caller's to report.
        if reconnect or nc.is_connected:
            log.warning("NATS: %s", exc or type(exc).__name__)

    await nc.connect(
        url,
        name=name,
        allow_reconnect=reconnect,
        # -1: for ever. nats-py also retries a first connection inside `connect`,
        # for ever unless this is positive: 1 gives up after a second attempt.
        max_reconnect_attempts=-1 if reconnect else 1,
        # Typed int by nats-py, but only ever slept on: fractions of a second work.
        reconnect_time_wait=reconnect_time_wait,  # type: ignore[arg-type]
        connect_timeout=5,
        # A dead peer is noticed after three unanswered pings (about 30 s) rather
        # than nats-py's default of four minutes, during which publishing stalls.
        ping_interval=10,
        max_outstanding_pings=3,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    return nc
