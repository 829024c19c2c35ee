"""Every event class billrun records, in one list.

The modules that declare events are named here once; adding an event module
means adding it to `EVENT_MODULES`. The list feeds the frozen topic table's
check, the AsyncAPI document and the mapper's topic resolution.
"""

from __future__ import annotations

import importlib

from domain.shared.model import DomainEvent

EVENT_MODULES = (
    "domain.billing.account",
    "domain.billing.exchange_rates",
    "domain.invoicing.bill_group",
    "domain.invoicing.invoice",
    "domain.invoicing.invoice_numbers",
    "domain.receivables.receivables",
    "domain.runs.bill_run",
    "domain.runs.schedule",
)


def event_catalogue() -> list[type[DomainEvent]]:
    """Every event type billrun records (and the relay publishes), by name."""
    for module in EVENT_MODULES:
        importlib.import_module(module)
    return sorted(_subclasses(DomainEvent), key=lambda event: event.__name__)


def _subclasses(cls: type[DomainEvent]) -> set[type[DomainEvent]]:
    found: set[type[DomainEvent]] = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _subclasses(sub)
    return found
