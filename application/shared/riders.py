"""Riders: events that a save carries besides the command's own, once.

The HTTP API's idempotency record rides along with the first save of the command
it answers (`application/shared/idempotency.py`), so the two commit in one
transaction. Held in a context variable: the API runs each request in its own
context (copied into the worker thread a synchronous endpoint runs in), so
concurrent requests never see each other's record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from domain.shared.idempotency import IdempotencyRecord
from domain.shared.model import DomainEvent


@dataclass
class Ride:
    record: IdempotencyRecord
    events: list[DomainEvent] = field(default_factory=list)
    """The record's first event, carried by every save until one commits (a
    command that retries a conflicting save carries it again)."""
    committed: bool = False


_riding: ContextVar[Ride | None] = ContextVar("billrun_idempotency_record", default=None)


@contextmanager
def riding_along(record: IdempotencyRecord) -> Iterator[Ride]:
    """While inside, the saves carry `record` until one of them commits."""
    ride = Ride(record, record.collect_events())
    token = _riding.set(ride)
    try:
        yield ride
    finally:
        _riding.reset(token)


def riders() -> list[DomainEvent]:
    """What the current save must carry: the pending record's event, until saved."""
    ride = _riding.get()
    if ride is None or ride.committed:
        return []
    return list(ride.events)


def carried() -> None:
    """The save that carried `riders()` committed."""
    ride = _riding.get()
    if ride is not None:
        ride.committed = True
