"""Idempotency keys: a write's record is committed with the write's own events.

The HTTP API opens `riding_along(record)` around a command; the first
`Billing.save` inside it saves the record in the same transaction as the
command's aggregates (`riders()`). So either both commit or neither does, and of
two requests racing with one key only one can commit: the other's save fails on
the record's version (optimistic concurrency) and it replays the winner's answer.
A command that saves nothing (it changed nothing) leaves the record to be saved
on its own afterwards, with its answer (`answer`).

The riding itself is `application/shared/riders.py`.
"""

from __future__ import annotations

from datetime import datetime

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.shared.app import Billing
from application.shared.riders import Ride, riding_along
from domain.shared.idempotency import IdempotencyRecord, record_uuid


def find_record(billing: Billing, tenant: str, key: str) -> IdempotencyRecord | None:
    try:
        record: IdempotencyRecord = billing.repository.get(
            record_uuid(tenant, key), projector_func=IdempotencyRecord.project
        )
    except AggregateNotFoundError:
        return None
    return record


def answer(
    billing: Billing, ride: Ride, status: int, body: str, headers: dict[str, str], at: datetime
) -> bool:
    """Record the command's answer on its record; False when another request with
    the same key committed first (this one's record was never saved)."""
    ride.record.answer(status, body, headers, at)
    # A command that saved nothing (it changed nothing) left the record unsaved:
    # it is saved now, accepted and answered at once.
    first = [] if ride.committed else ride.events
    try:
        billing.save(*first, ride.record)
    except IntegrityError:
        return False
    ride.committed = True
    return True


__all__ = ["IntegrityError", "Ride", "answer", "find_record", "riding_along"]
