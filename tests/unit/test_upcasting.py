"""Receivables events at class version 2 name their account and currency; those
stored before (version 1, no `class_version` key) still load, upcast with None,
and the relay makes the same public bodies of both, looking the aggregate's
facts up only for the old ones."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from domain.receivables import events
from domain.receivables.collection import CollectionType
from domain.receivables.receivables import Receivables
from domain.shared.model import DomainEvent
from infrastructure.persistence import OrjsonTranscoder, PydanticMapper
from infrastructure.relay import Encoder
from infrastructure.relay.log import RelayRow

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAPPER = PydanticMapper(transcoder=OrjsonTranscoder())

V2_EVENTS = {
    events.AutoPaySet,
    events.InvoicePosted,
    events.PaymentReceived,
    events.CreditNotePosted,
    events.DunningApplied,
    events.AccountSuspended,
    events.AccountReinstated,
    events.CollectionAttempted,
    events.CollectionAnswered,
}
WITH_CURRENCY = {e for e in V2_EVENTS if issubclass(e, events.MoneyEvent)}


def today_events() -> list[DomainEvent]:
    """An account's receivables as today's code records them."""
    receivables = Receivables.open("ACC-1", "EUR", AT)
    receivables.set_autopay("tok_0123456789abcdef", AT)
    invoice_id = uuid4()
    receivables.post_invoice(
        invoice_id, "INV-00000001", date(2026, 3, 1), date(2026, 3, 15), Decimal("119.00"), AT
    )
    receivables.receive_payment("PAY-1", Decimal("19.00"), date(2026, 3, 2), AT)
    receivables.start_collection("RUN-1", CollectionType.ACCOUNT_BALANCE, date(2026, 3, 20), AT)
    receivables.post_credit_note(
        uuid4(), "CN-00000001", invoice_id, Decimal("10.00"), date(2026, 3, 3), AT
    )
    return receivables.collect_events()


def as_v1(stored: StoredEvent) -> StoredEvent:
    """The same event in the shape billrun stored before version 2."""
    state = orjson.loads(stored.state)
    if state.pop("class_version", None) is not None:
        state.pop("account_id")
        state.pop("currency", None)
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                       orjson.dumps(state))  # fmt: skip


def row(nid: int, stored: StoredEvent) -> RelayRow:
    return (nid, str(stored.originator_id), stored.originator_version, stored.topic, stored.state)


def test_new_receivables_events_carry_their_account_and_currency() -> None:
    recorded = today_events()
    assert {type(e) for e in recorded} >= V2_EVENTS - {
        events.DunningApplied, events.AccountSuspended, events.AccountReinstated,
        events.CollectionAnswered,
    }  # fmt: skip
    for event in recorded:
        if isinstance(event, events.AccountEvent):
            assert type(event) in V2_EVENTS
            assert event.account_id == "ACC-1"
        if isinstance(event, events.MoneyEvent):
            assert event.currency == "EUR"
        stored = MAPPER.to_stored_event(event)
        state = orjson.loads(stored.state)
        assert ("class_version" in state) == (type(event) in V2_EVENTS)
        assert MAPPER.to_domain_event(stored) == event


def test_version_1_events_upcast_with_none_and_the_aggregate_loads() -> None:
    recorded = today_events()
    old = [MAPPER.to_domain_event(as_v1(MAPPER.to_stored_event(e))) for e in recorded]
    reloaded = Receivables(recorded[0].originator_id)
    for before, after in zip(recorded, old, strict=True):
        if isinstance(after, events.AccountEvent):
            assert after.account_id is None
            expected = before.model_copy(update={"account_id": None})
            if isinstance(after, events.MoneyEvent):
                assert after.currency is None
                expected = expected.model_copy(update={"currency": None})
            assert after == expected
        else:
            assert after == before
        reloaded.apply(after)
    assert reloaded.account_id == "ACC-1"
    assert reloaded.version == len(recorded)
    assert reloaded.balance == Decimal("90.00")


def test_the_relay_makes_the_same_bodies_and_skips_the_facts_for_new_events() -> None:
    stored = [MAPPER.to_stored_event(e) for e in today_events()]
    looked_up: list[list[str]] = []

    def lookup(ids: list[str]) -> list[tuple[int, str, str, bytes]]:
        looked_up.append(ids)
        opened = stored[0]
        return [(1, str(opened.originator_id), opened.topic.rpartition(":")[2], opened.state)]

    def bodies(rows: list[RelayRow]) -> list[dict[str, Any]]:
        # Mid-log: the opening event is not in the page, the encoder must look it up.
        encoder = Encoder("billing", "test", lookup)
        encoder.prepare(rows)
        return [orjson.loads(out.body) for r in rows if (out := encoder.encode(r)) is not None]

    new_rows = [row(n, s) for n, s in enumerate(stored, start=1)][1:]
    old_rows = [row(n, as_v1(s)) for n, s in enumerate(stored, start=1)][1:]
    new = bodies(new_rows)
    assert looked_up == []  # self-describing: no lookup
    old = bodies(old_rows)
    assert looked_up == [[str(stored[0].originator_id)]]
    assert new == old
    assert all(body["account_id"] == "ACC-1" for body in new)
    assert all(body["currency"] == "EUR" for body in new if "amount" in body)


@pytest.mark.parametrize("event_class", sorted(V2_EVENTS, key=lambda e: e.__name__))
def test_v2_events_declare_the_library_upcast(event_class: type[events.AccountEvent]) -> None:
    state: dict[str, Any] = {}
    event_class.upcast_v1_v2(state)
    assert event_class.class_version == 2
    assert state["account_id"] is None
    assert ("currency" in state) == (event_class in WITH_CURRENCY)
