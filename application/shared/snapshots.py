"""When an aggregate's snapshot is taken, and of which aggregates.

An account is loaded by every run that bills it, and every run adds events to
it (its billings; usage records and charges between runs), so loading it from
its events alone costs more with every month of its history. Every
`SNAPSHOT_INTERVAL` events the application stores the account's state (and an
invoicer's receivables', which gain an event at every run too) at that
version in the library's snapshot store (`Application.snapshots`, table
`billing_snapshots`), and loading reads the latest snapshot and the fewer than
`SNAPSHOT_INTERVAL` events after it, whatever the history (`Billing.load_many`,
and the library's `Repository.get` for one aggregate).

Snapshots are taken from the aggregates just saved, in memory (they hold
exactly the state of the events stored), and put after the save's commit, in
one more transaction: a snapshot is a cache of the log, so a crash between the
two loses a snapshot, never an event, and the next one is taken
`SNAPSHOT_INTERVAL` events later. Nothing reads snapshots but the loaders: the
relay, the projections, the audit seal and the auditors' history read the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from domain.billing.account import Account
from domain.billing.snapshot import AccountSnapshot
from domain.receivables.receivables import Receivables
from domain.receivables.snapshot import ReceivablesSnapshot
from domain.shared.model import Aggregate, AggregateSnapshot

SNAPSHOT_CLASSES: Mapping[type[Aggregate], type[AggregateSnapshot]] = {
    Account: AccountSnapshot,
    # An invoicer's receivables gain an event at every run (the invoice posted)
    # and are loaded by every batch that bills it.
    Receivables: ReceivablesSnapshot,
}
SNAPSHOT_INTERVAL = 20
"""Events between two snapshots of an aggregate: a load reads at most this many
events after its snapshot. An account gains about 5 events a month (billing
three lines, its open invoice, a usage record and a charge), so one snapshot
every three to four monthly runs."""


def snapshots_due(
    events: Iterable[Any], aggregates: Mapping[UUID, Any], interval: int = SNAPSHOT_INTERVAL
) -> list[AggregateSnapshot]:
    """Snapshots of the aggregates just saved with `events` that are at least
    `interval` events past their last snapshot (or their first event), taken only
    of an aggregate whose version is that of its last event stored (so its state
    is exactly theirs). Saves that store events without their aggregate (the
    import) take none: the next save with the aggregate does."""
    last: dict[UUID, int] = {}
    for event in events:
        last[event.originator_id] = event.originator_version
    due: list[AggregateSnapshot] = []
    for aggregate_id, version in last.items():
        aggregate = aggregates.get(aggregate_id)
        if aggregate is None or aggregate.version != version:
            continue
        snapshot_class = SNAPSHOT_CLASSES.get(type(aggregate))
        if snapshot_class is None or version - aggregate.snapshot_version < interval:
            continue
        due.append(snapshot_class.take(aggregate))
        aggregate.snapshot_version = version
    return due
