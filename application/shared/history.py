"""History as an auditor reads it: the stored events of a run, an account, an
invoice or the whole log, in commit order, straight from the event store.

Events are streamed page by page and decoded from their stored JSON without
rebuilding domain objects, so exporting the history of a 100,000-account run
needs constant memory and runs at the speed of reading the log.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.shared.app import Billing
from application.shared.errors import AccountNotFound, InvoiceNotFound, RunNotFound
from domain.billing.events import PackageBilled
from domain.invoicing.events import InvoiceClosed, InvoiceOpened, InvoiceReleased
from domain.receivables.events import CreditNotePosted, InvoicePosted
from domain.receivables.receivables import receivables_uuid
from domain.shared.ids import account_uuid, invoice_uuid, run_uuid
from infrastructure.persistence import ACTOR_KEY

PAGE_SIZE = 5000


@dataclass(frozen=True)
class HistoryEntry:
    notification_id: int
    aggregate: str
    aggregate_id: UUID
    version: int
    event: str
    timestamp: str
    payload: dict[str, Any]
    actor: dict[str, Any] | None = None
    """Who stored it (`key_id`, `role`, `name`: an API key, or `cli` and the OS
    user); None for events stored before billrun recorded it."""

    def as_json(self) -> dict[str, Any]:
        entry = {
            "notification_id": self.notification_id,
            "timestamp": self.timestamp,
            "aggregate": self.aggregate,
            "aggregate_id": str(self.aggregate_id),
            "version": self.version,
            "event": self.event,
        }
        # Only when recorded: an old log's export stays byte for byte what it was.
        if self.actor is not None:
            entry["actor"] = self.actor
        entry["payload"] = self.payload
        return entry

    @property
    def by(self) -> str:
        """The actor in a word, for tables: the API key's id, or `cli`."""
        return str(self.actor["key_id"]) if self.actor else ""


def describe_topic(topic: str) -> tuple[str, str]:
    """`domain.bill_run:RunStarted` -> ("billrun", "RunStarted")."""
    module, _, name = topic.partition(":")
    return module.rsplit(".", 1)[-1].replace("_", ""), name


_POSTED_DOCUMENTS = (
    (InvoicePosted.__name__, "invoice_id"),
    (CreditNotePosted.__name__, "credit_note_id"),
)
"""Receivables events naming a document of the account, and the field that does."""


_FOLLOWED = {InvoiceOpened.__name__, InvoiceClosed.__name__, InvoiceReleased.__name__}
"""Invoice events after which the invoice's later events belong to the run too."""


def caused_by(entry: HistoryEntry, run_id: str) -> bool:
    """Whether run `run_id` caused this event: it carries the run's id, or the run
    closed an invoice another run opened (`closed_by_run`), or billed a line onto
    it (the line's own `run_id`; the event's is the opening run's)."""
    payload = entry.payload
    if payload.get("run_id") == run_id or payload.get("closed_by_run") == run_id:
        return True
    line = payload.get("line")
    return isinstance(line, dict) and line.get("run_id") == run_id


class History:
    def __init__(self, billing: Billing) -> None:
        self.billing = billing
        self._decode = billing.mapper.decode_state  # type: ignore[attr-defined]

    def _entry(
        self, nid: int, originator_id: UUID, version: int, topic: str, state: bytes
    ) -> HistoryEntry:
        payload = self._decode(state)
        # How the event was stored (its schema version) and by whom, not what happened.
        payload.pop("class_version", None)
        actor = payload.pop(ACTOR_KEY, None)
        aggregate, event = describe_topic(topic)
        return HistoryEntry(
            notification_id=nid,
            aggregate=aggregate,
            aggregate_id=originator_id,
            version=version,
            event=event,
            timestamp=str(payload.pop("timestamp", "")),
            payload=payload,
            actor=actor,
        )

    # Each query checks that its subject exists before it returns the stream, so an
    # unknown id is refused before a caller has written anything (say a JSON "[").

    def of_run(self, run_id: str) -> Iterator[HistoryEntry]:
        """The run's own events and every event it caused (those carrying its run id).

        Billing's effects are all committed between the run's first and last
        event, so only that stretch of the log is read, in pages; what happens to
        the run's invoices afterwards (rendering, delivery) is then read by their
        ids. Raises RunNotFound.
        """
        own = self.billing.queries.events_with_ids([run_uuid(run_id)])
        if not own:
            raise RunNotFound(run_id)
        return self._of_run(run_id, own[0][0], own[-1][0])

    def _of_run(self, run_id: str, first: int, last: int) -> Iterator[HistoryEntry]:
        aggregate_id = run_uuid(run_id)
        invoices: dict[UUID, None] = {}
        for row in self.billing.queries.notification_rows(first, last, PAGE_SIZE):
            nid, originator_id, version, topic, state = row
            if originator_id == aggregate_id:
                yield self._entry(nid, originator_id, version, topic, state)
                continue
            entry = self._entry(nid, originator_id, version, topic, state)
            if caused_by(entry, run_id):
                if entry.event in _FOLLOWED:
                    # Its later events (rendering, delivery) are the run's doing too,
                    # whichever run opened it; an invoice the run only added lines
                    # to is closed, rendered and delivered by a later run.
                    invoices[originator_id] = None
                yield entry
        for row in self.billing.queries.events_after(list(invoices), last):
            yield self._entry(*row)

    def of_account(self, account_id: str) -> Iterator[HistoryEntry]:
        """The account's events, its receivables' (payments, dunning, collection) and
        those of every invoice and credit note billed or posted to it. Raises
        AccountNotFound."""
        account = account_uuid(account_id)
        own = self.billing.queries.events_with_ids([account])
        if not own:
            raise AccountNotFound(account_id)
        billed_runs = {
            self._decode(state)["run_id"]
            for _, _, _, topic, state in own
            if topic.endswith(":" + PackageBilled.__name__)
        }
        receivables = receivables_uuid(account_id)
        posted = [
            UUID(self._decode(state)[field])
            for _, _, _, topic, state in self.billing.queries.events_with_ids([receivables])
            for event, field in _POSTED_DOCUMENTS
            if topic.endswith(":" + event)
        ]
        documents = [invoice_uuid(run, account_id) for run in sorted(billed_runs)] + posted
        return self._of_aggregates([account, receivables, *dict.fromkeys(documents)])

    def of_invoice(self, invoice_id: UUID) -> Iterator[HistoryEntry]:
        """The invoice's events. Raises InvoiceNotFound."""
        rows = self.billing.queries.events_with_ids([invoice_id])
        if not rows:
            raise InvoiceNotFound(str(invoice_id))
        return (self._entry(*row) for row in rows)

    def of_log(self, first: int = 1) -> Iterator[HistoryEntry]:
        """Every stored event from notification id `first` on, in commit order, read
        in pages (constant memory); up to the head of the log when it is called, so
        an export is a snapshot even while billing goes on."""
        last = self.billing.queries.head()
        for row in self.billing.queries.notification_rows(first, last, PAGE_SIZE):
            yield self._entry(*row)

    def _of_aggregates(self, ids: Sequence[UUID]) -> Iterator[HistoryEntry]:
        for row in self.billing.queries.events_with_ids(ids):
            yield self._entry(*row)
