"""Receivables' snapshot holds their whole state: rebuilt from the snapshot
(through the event store's JSON), they are the receivables their events rebuild,
and they decide what those would (a payment is recorded once, allocation goes on)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

from domain.receivables.collection import CollectionType, GatewayOutcome
from domain.receivables.receivables import Receivables
from domain.receivables.snapshot import ReceivablesSnapshot
from domain.shared.dispatch import Dispatch
from tests.unit.test_account_snapshot import through_the_store
from tests.unit.test_receivables import AT, ledger, post

D = Decimal


def state(receivables: Receivables) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(receivables).items()
        if name not in ("_pending", "snapshot_version")
    }


def a_long_history() -> Receivables:
    """Invoices paid, part paid and withdrawn, a credit note, credit left over, a
    declined collection attempt, a notice sent, payment terms and autopay set."""
    r = ledger()
    r.set_payment_terms(14, AT)
    r.set_autopay("tok_declined", AT)
    jan = post(r, 1, "100.00", date(2026, 1, 31))
    feb = post(r, 2, "80.00", date(2026, 2, 28))
    withdrawn = post(r, 3, "10.00", date(2026, 3, 1))
    r.withdraw_invoice(withdrawn, "issued in error", AT)
    r.receive_payment("p1", D("150.00"), date(2026, 3, 2), AT)
    r.post_credit_note(uuid4(), "CN-1", feb, D("40.00"), date(2026, 3, 3), AT)
    post(r, 4, "20.00", date(2026, 3, 4))
    day = date(2026, 3, 4)
    attempt = r.start_collection("run-1", CollectionType.ACCOUNT_BALANCE, day, AT)
    assert attempt is not None
    r.answer_collection(attempt.attempt_id, GatewayOutcome.DECLINED, None, "no", day, AT)
    r.record_notice(jan, 1, Dispatch("email", "a@b.test", "m-1", None), AT)
    post(r, 5, "20.00", date(2026, 4, 1))
    return r


def test_a_snapshot_holds_every_attribute_of_the_receivables() -> None:
    kept_by_the_base = {"id", "version", "modified_on", "snapshot_version"}
    attributes = set(state(ledger())) - kept_by_the_base
    assert set(ReceivablesSnapshot.state_fields()) == attributes


def test_receivables_rebuilt_from_their_snapshot_are_what_their_events_rebuild() -> None:
    receivables = a_long_history()
    replayed = Receivables.project(None, receivables.collect_events())
    assert replayed is not None and state(replayed) == state(receivables)

    restored = Receivables.project(None, [through_the_store(ReceivablesSnapshot.take(receivables))])

    assert restored is not None
    assert state(restored) == state(replayed)
    assert restored.payments and restored.credit_notes and restored.notices_sent


def test_restored_receivables_record_a_payment_once_and_allocate_as_replayed_ones() -> None:
    receivables = a_long_history()
    replayed = Receivables.project(None, receivables.collect_events())
    restored = Receivables.project(None, [through_the_store(ReceivablesSnapshot.take(receivables))])
    assert replayed is not None and restored is not None

    for r in (replayed, restored):
        r.receive_payment("p1", D("150.00"), date(2026, 3, 2), AT)  # already recorded
        r.receive_payment("p2", D("5.00"), date(2026, 4, 1), AT)

    assert [type(e) for e in restored.collect_events()] == [
        type(e) for e in replayed.collect_events()
    ]
    assert state(restored) == state(replayed)
