"""The public event contract: what billrun publishes, separate from what it stores.

The relay maps each stored domain event that has a public form to a CloudEvents
1.0 message in binary mode (`ce-*` NATS headers, the body is the event's data)
with a versioned type such as `billrun.invoice.closed.v1`. Stored events that have
no public form (run mechanics such as leases and batch checkpoints, number
reservations, internal bookkeeping) are not published; `billrun history --all`
has every event. One module per bounded context: `billing`, `runs`, `invoicing`,
`receivables`, `reference`; `base` holds what they share and `facts` what the
relay remembers between events.

Stored events are never rewritten: fields a public event needs that its stored
event lacks (events stored before their class version 2) come from the
aggregate's earlier events (`facts`).
See docs/subscribing.md for the contract as subscribers read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from infrastructure.contract import billing, invoicing, receivables, reference, runs
from infrastructure.contract.base import (
    DECIMAL_PATTERN,
    Facts,
    PublicEvent,
    PublicForm,
)
from infrastructure.contract.facts import FactTable, Lookup, Opener

CE_SPECVERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/json"

_MODULES = (billing, runs, invoicing, receivables, reference)

PUBLIC_FORMS: Final[Mapping[str, PublicForm]] = {
    form.stored: form for module in _MODULES for form in module.FORMS
}
"""Stored event name -> its public form: the public event types, in one table."""

OPENERS: Final[Mapping[str, Opener]] = {
    name: opener for module in _MODULES for name, opener in module.OPENERS.items()
}

SELF_CONTAINED: Final = frozenset(
    {"AccountOpened", "RunScheduled", "InvoiceOpened", "PackageBilled", "UsageBilled",
     "ChargeBilled"} | {form.stored for form in reference.FORMS}
)  # fmt: skip
"""Public events whose stored form carries every natural id their body needs."""

NEEDS_FACTS: Final = frozenset(PUBLIC_FORMS) - SELF_CONTAINED

SELF_CONTAINED_FROM_V2: Final = frozenset().union(
    *(module.SELF_CONTAINED_FROM_V2 for module in (billing, runs, invoicing, receivables))
)
"""Events that need facts only when stored before class version 2 (their stored
state has no `class_version` key): every event of `NEEDS_FACTS`."""


def ce_source(source: str) -> str:
    """The CloudEvents `ce-source` of a deployment (a URI reference)."""
    return f"/billrun/{source}"


def fact_table(lookup: Lookup | None = None) -> FactTable:
    return FactTable(OPENERS, lookup)


__all__ = [
    "CE_SPECVERSION",
    "CONTENT_TYPE",
    "DECIMAL_PATTERN",
    "NEEDS_FACTS",
    "OPENERS",
    "PUBLIC_FORMS",
    "SELF_CONTAINED_FROM_V2",
    "FactTable",
    "Facts",
    "PublicEvent",
    "PublicForm",
    "ce_source",
    "fact_table",
]
