"""Saving against other writers: optimistic concurrency, retried from a fresh load."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from eventsourcing.persistence import RecordConflictError

from application.shared.app import Billing
from domain.shared.model import Aggregate

SAVE_ATTEMPTS = 5
"""How many times a command loads, decides and saves before it gives up: another
process writing the same aggregate at the same moment makes a save conflict."""

A = TypeVar("A", bound=Aggregate)


def save_retrying(billing: Billing, load_and_decide: Callable[[], A], conflict: str) -> A:
    """Load, decide and save, again from a fresh load while another process
    writes to the same aggregate at the same moment; `conflict` is the error
    after SAVE_ATTEMPTS tries."""
    for _ in range(SAVE_ATTEMPTS):
        aggregate = load_and_decide()
        try:
            billing.save(aggregate)
        except RecordConflictError:
            continue
        return aggregate
    raise RecordConflictError(conflict)
