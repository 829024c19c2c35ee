"""Every event class billrun records, in one list.

Each bounded context declares its events in its own `events.py`, named here
once; a new context means adding its events module to `EVENT_MODULES`. The
list feeds the frozen topic table's check, the AsyncAPI document and the
mapper's topic resolution.
"""

from __future__ import annotations

import importlib

from domain.shared.model import DomainEvent

EVENT_MODULES = (
    "domain.billing.events",
    "domain.invoicing.events",
    "domain.receivables.events",
    "domain.runs.events",
    "domain.shared.idempotency",
)


def event_catalogue() -> list[type[DomainEvent]]:
    """Every event type billrun records (and the relay publishes), by name."""
    for module in EVENT_MODULES:
        importlib.import_module(module)
    return sorted(_subclasses(DomainEvent), key=lambda event: event.__name__)


def _subclasses(cls: type[DomainEvent]) -> set[type[DomainEvent]]:
    found: set[type[DomainEvent]] = set()
    for sub in cls.__subclasses__():
        # Shared bases (`events.MoneyEvent`) are not recorded themselves.
        if not sub.__dict__.get("shared_base", False):
            found.add(sub)
        found |= _subclasses(sub)
    return found
