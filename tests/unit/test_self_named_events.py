"""Every stored event whose public form needs a natural id it did not carry (an
invoice event's account, document type and number, a run event's run id, a
charge's or contract's account and currency) carries it from class version 2 on,
filled by its aggregate (`DomainEvent.from_aggregate`). Events stored before
upcast those fields to None, and the relay fills them from the aggregate's
opening events; for version 2 events it needs none, and the public bodies are the
same. (The same over the whole committed old log, recorded again as today's code
records it: tests/integration/test_self_named_events.py.)"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from domain.billing.account import Account
from domain.billing.contracts import ContractTerms
from domain.billing.terms import ChargeTerms
from domain.catalogue import event_catalogue
from domain.invoicing.invoice import Invoice
from domain.runs.bill_run import BillRun
from domain.runs.settings import CancelMode, Selection
from domain.shared.dispatch import Dispatch
from domain.shared.model import DomainEvent
from domain.shared.periods import Period
from infrastructure.contract import NEEDS_FACTS, OPENERS, PUBLIC_FORMS, SELF_CONTAINED_FROM_V2
from infrastructure.persistence import OrjsonTranscoder, PydanticMapper
from infrastructure.relay import Encoder
from infrastructure.relay.log import RelayRow
from infrastructure.topics import event_classes_by_topic
from tests.unit.test_credit_notes import credit, full, line

AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
MAPPER = PydanticMapper(transcoder=OrjsonTranscoder())
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
VERSIONED = [e for e in event_catalogue() if getattr(e, "class_version", 1) > 1]


@pytest.mark.parametrize("event_class", VERSIONED, ids=lambda e: e.__name__)
def test_what_the_aggregate_fills_is_what_an_older_event_lacks(
    event_class: type[DomainEvent],
) -> None:
    state: dict[str, Any] = {}
    event_class.upcast_v1_v2(state)  # type: ignore[attr-defined]
    assert state == dict.fromkeys(event_class.from_aggregate)
    assert set(event_class.from_aggregate) <= set(event_class.model_fields)


def test_every_public_event_that_needs_facts_names_itself_from_version_2() -> None:
    by_name = {cls.__name__: cls for cls in event_classes_by_topic().values()}
    assert NEEDS_FACTS <= SELF_CONTAINED_FROM_V2
    assert {by_name[name] for name in SELF_CONTAINED_FROM_V2} <= set(VERSIONED)
    assert all(e.from_aggregate for e in VERSIONED)
    assert not [e for e in event_catalogue() if e.from_aggregate and e not in VERSIONED]


def invoice_events() -> list[list[DomainEvent]]:
    """An invoice reviewed, rendered, delivered and credited; one held and released
    by a later run; one rejected; one cancelled (each with its own events)."""
    invoice = Invoice.open("2026-03", "ACME-001", "EUR", date(2026, 3, 31), AT)
    invoice.add_line(line("100.00"), AT)
    invoice.close(7, AT, due_date=date(2026, 4, 30))
    invoice.quarantine("check the price", AT)
    invoice.release_from_quarantine(AT)
    invoice.approve(AT, "fine")
    invoice.record_rendering("pdf", "ab" * 32, "/srv/x.pdf", 1234, AT)
    invoice.record_delivery(Dispatch("file", "ap@example.test", "<m@billrun>", "x.eml"), AT)
    note = credit(invoice, **full())
    held = Invoice.open("2026-03", "ACME-002", "USD", date(2026, 3, 31), AT)
    held.close(8, AT, release=False)
    held.release("2026-04", AT)
    rejected = Invoice.open("2026-03", "ACME-003", "EUR", date(2026, 3, 31), AT)
    rejected.close(9, AT)
    rejected.reject("wrong account", AT)
    cancelled = Invoice.open("2026-03", "ACME-004", "EUR", date(2026, 3, 31), AT)
    cancelled.close(10, AT)
    cancelled.cancel("duplicate", AT)
    return [a.collect_events() for a in (invoice, note, held, rejected, cancelled)]


def run_events() -> list[list[DomainEvent]]:
    done = BillRun.schedule("2026-03", MARCH, None, Selection(), AT)
    done.start(1, 0, AT)
    done.complete(AT)
    done.validate(0, AT)
    done.finalize(AT)
    failed = BillRun.schedule("2026-03b", MARCH, None, Selection(), AT)
    failed.fail("no rate", AT)
    cancelled = BillRun.schedule("2026-03c", MARCH, None, Selection(), AT)
    cancelled.cancel(CancelMode.DISCARD, "by mistake", 0, AT)
    return [r.collect_events() for r in (done, failed, cancelled)]


def account_events() -> list[list[DomainEvent]]:
    account = Account.open("ACME-001", "Acme", "EUR", None, "default", AT, Decimal(0))
    account.add_charge(
        ChargeTerms(
            charge_id="setup", description="Setup", amount=Decimal("30.00"),
            charge_date=date(2026, 3, 2),
        ),
        AT,
    )  # fmt: skip
    account.agree_contract(
        ContractTerms(
            contract_id="k", start_date=date(2026, 1, 1), term_months=12,
            minimum_spend=Decimal("100.00"), description="Contract",
        ),
        AT,
    )  # fmt: skip
    return [account.collect_events()]


def test_todays_aggregates_name_the_document_run_and_account() -> None:
    invoice, note, held, rejected, cancelled = invoice_events()
    for event in invoice[2:]:  # after opening and its line
        names = (event.account_id, event.document_type, event.number)  # type: ignore[attr-defined]
        assert names == ("ACME-001", "invoice", 7), event
    assert invoice[-1].currency == "EUR"  # type: ignore[attr-defined]  # InvoiceCredited
    closed = next(e for e in note if type(e).__name__ == "InvoiceClosed")
    assert closed.corrects_number == 7  # type: ignore[attr-defined]
    approved = note[-1]
    assert (approved.document_type, approved.number) == ("credit_note", 1)  # type: ignore[attr-defined]
    released = held[-1]
    assert (released.run_id, released.opened_by_run) == ("2026-04", "2026-03")  # type: ignore[attr-defined]
    for run in run_events():
        for event in run[1:]:
            assert event.run_id == run[0].run_id  # type: ignore[attr-defined]
    for event in account_events()[0][1:]:
        assert (event.account_id, event.currency) == ("ACME-001", "EUR")  # type: ignore[attr-defined]
    assert rejected and cancelled


def as_v1(stored: StoredEvent) -> StoredEvent:
    """The same event in the shape billrun stored before its class version 2."""
    state = orjson.loads(stored.state)
    if state.pop("class_version", None) is not None:
        for name in event_classes_by_topic()[stored.topic].from_aggregate:
            state.pop(name)
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                       orjson.dumps(state))  # fmt: skip


def published(
    aggregates: list[list[DomainEvent]], old: bool
) -> tuple[list[tuple[str, dict[str, str], bytes]], list[list[str]]]:
    """What the relay publishes of the aggregates' events after their first,
    starting mid-log (the opening events are only in the event store), and the
    lookups it made."""
    stored = [MAPPER.to_stored_event(e) for events in aggregates for e in events]
    if old:
        stored = [as_v1(s) for s in stored]
    rows: list[RelayRow] = [
        (nid, str(s.originator_id), s.originator_version, s.topic, s.state)
        for nid, s in enumerate(stored, start=1)
    ]
    openings = [r for r in rows if r[3].rpartition(":")[2] in OPENERS]
    looked_up: list[list[str]] = []

    def lookup(ids: list[str]) -> list[tuple[int, str, str, bytes]]:
        looked_up.append(ids)
        return [(r[0], r[1], r[3].rpartition(":")[2], r[4]) for r in openings if r[1] in ids]

    page = [r for r in rows if r[2] > 1]  # from each aggregate's second event on
    encoder = Encoder("billing", "test", lookup)
    encoder.prepare(page)
    messages = [(m.subject, m.headers, m.body) for r in page if (m := encoder.encode(r))]
    return messages, looked_up


@pytest.mark.parametrize("made", [invoice_events, run_events, account_events])
def test_the_relay_publishes_the_same_and_needs_no_facts_for_version_2(made: Any) -> None:
    aggregates = made()
    new, new_lookups = published(aggregates, old=False)
    old, old_lookups = published(aggregates, old=True)
    assert new_lookups == [] and old_lookups != []
    assert new == old
    for _, headers, body in new:
        data = orjson.loads(body)
        form = next(f for f in PUBLIC_FORMS.values() if f.ce_type == headers["ce-type"])
        form.model.model_validate(data)
        assert all(data[key] for key in ("account_id", "currency", "number") if key in data)
        # A credit note, and the credit on the invoice it corrects, are an operator's.
        by_operator = data.get("document_type") == "credit_note" or "credit_note_id" in data
        assert "run_id" not in data or bool(data["run_id"]) != by_operator, data
    assert len(new) >= sum(len(events) for events in aggregates) // 3
