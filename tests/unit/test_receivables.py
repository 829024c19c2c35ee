"""Receivables: posting, allocation oldest first, credit balance, withdrawal,
credit notes, collection attempts. Pure domain, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.receivables.allocation import (
    Allocation,
    Item,
    PaymentStatus,
    ReceivablesError,
    allocate,
)
from domain.receivables.collection import CollectionType, GatewayOutcome
from domain.receivables.receivables import Receivables

AT = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def ledger(currency: str = "EUR") -> Receivables:
    return Receivables.open("ACME", currency, AT)


def post(r: Receivables, number: int, amount: str, issued: date, terms: int = 30) -> UUID:
    invoice_id = uuid4()
    r.post_invoice(
        invoice_id, f"INV-{number:08d}", issued, issued + timedelta(days=terms), D(amount), AT
    )
    return invoice_id


def test_a_payment_pays_the_oldest_invoice_first_and_the_rest_goes_to_the_next() -> None:
    r = ledger()
    jan = post(r, 1, "100.00", date(2026, 1, 31))
    feb = post(r, 2, "100.00", date(2026, 2, 28))
    r.receive_payment("p1", D("150.00"), date(2026, 3, 1), AT)
    assert r.items[jan].status() is PaymentStatus.PAID
    assert r.items[feb].status() is PaymentStatus.PARTIALLY_PAID
    assert r.items[feb].open_amount == D("50.00")
    assert r.balance == D("50.00")


def test_an_overpayment_becomes_a_credit_balance_used_by_the_next_invoice() -> None:
    r = ledger()
    jan = post(r, 1, "100.00", date(2026, 1, 31))
    r.receive_payment("p1", D("130.00"), date(2026, 2, 1), AT)
    assert (r.items[jan].status(), r.credit, r.balance) == (PaymentStatus.PAID, D(30), D(-30))
    feb = post(r, 2, "100.00", date(2026, 2, 28))
    assert r.items[feb].allocated == D("30.00")
    assert (r.credit, r.balance) == (D(0), D("70.00"))


def test_an_invoice_is_overdue_after_its_due_date_until_it_is_paid() -> None:
    r = ledger()
    jan = post(r, 1, "100.00", date(2026, 1, 31), terms=14)
    item = r.items[jan]
    assert item.status(date(2026, 2, 14)) is PaymentStatus.UNPAID
    assert item.status(date(2026, 2, 15)) is PaymentStatus.OVERDUE
    assert item.days_overdue(date(2026, 3, 1)) == 15
    r.receive_payment("p1", D("100.00"), date(2026, 3, 1), AT)
    assert item.status(date(2026, 3, 1)) is PaymentStatus.PAID


def test_the_same_payment_twice_is_recorded_once_and_other_data_under_its_id_is_refused() -> None:
    r = ledger()
    post(r, 1, "100.00", date(2026, 1, 31))
    assert r.receive_payment("p1", D("40.00"), date(2026, 2, 1), AT)
    assert not r.receive_payment("p1", D("40.00"), date(2026, 2, 1), AT)
    with pytest.raises(ReceivablesError, match="already recorded"):
        r.receive_payment("p1", D("41.00"), date(2026, 2, 1), AT)
    assert r.balance == D("60.00")


@pytest.mark.parametrize(
    ("amount", "problem"),
    [("0.00", "must be positive"), ("-5.00", "must be positive"), ("1.001", "minor unit")],
)
def test_a_payment_that_is_not_a_positive_amount_of_the_currency_is_refused(
    amount: str, problem: str
) -> None:
    r = ledger()
    with pytest.raises(ReceivablesError, match=problem):
        r.receive_payment("p1", D(amount), date(2026, 2, 1), AT)
    assert r.version == 1


def test_a_withdrawn_invoice_returns_what_was_paid_on_it_to_the_other_invoices() -> None:
    r = ledger()
    jan = post(r, 1, "100.00", date(2026, 1, 31))
    feb = post(r, 2, "80.00", date(2026, 2, 28))
    r.receive_payment("p1", D("100.00"), date(2026, 3, 1), AT)
    r.withdraw_invoice(jan, "cancelled", AT)
    assert r.items[jan].status() is PaymentStatus.WITHDRAWN
    assert r.items[feb].status() is PaymentStatus.PAID
    assert (r.credit, r.balance) == (D("20.00"), D("-20.00"))
    assert not r.withdraw_invoice(jan, "again", AT)


def test_a_negative_invoice_pays_the_open_invoices_and_leaves_the_rest_as_credit() -> None:
    r = ledger()
    jan = post(r, 1, "30.00", date(2026, 1, 31))
    credit = post(r, 2, "-50.00", date(2026, 2, 28))
    assert r.items[jan].status() is PaymentStatus.PAID
    assert r.items[credit].status() is PaymentStatus.PAID
    assert (r.credit, r.balance) == (D("20.00"), D("-20.00"))


def test_a_credit_note_pays_the_invoice_it_corrects_first() -> None:
    r = ledger()
    jan = post(r, 1, "100.00", date(2026, 1, 31))
    feb = post(r, 2, "100.00", date(2026, 2, 28))
    r.post_credit_note(uuid4(), "CN-00000001", feb, D("40.00"), date(2026, 3, 1), AT)
    assert r.items[jan].open_amount == D("100.00")
    assert r.items[feb].open_amount == D("60.00")
    assert r.balance == D("160.00")


def test_a_credit_note_on_a_paid_invoice_becomes_credit() -> None:
    r = ledger()
    jan = post(r, 1, "100.00", date(2026, 1, 31))
    r.receive_payment("p1", D("100.00"), date(2026, 2, 1), AT)
    note = uuid4()
    r.post_credit_note(note, "CN-00000001", jan, D("25.00"), date(2026, 2, 2), AT)
    assert (r.credit, r.balance) == (D("25.00"), D("-25.00"))
    assert not r.post_credit_note(note, "CN-00000001", jan, D("25.00"), date(2026, 2, 2), AT)


def test_posting_the_same_invoice_twice_posts_it_once() -> None:
    r = ledger()
    invoice_id = uuid4()
    args = (invoice_id, "INV-1", date(2026, 1, 31), date(2026, 3, 2), D("10.00"), AT)
    assert r.post_invoice(*args)
    assert not r.post_invoice(*args)
    assert r.balance == D("10.00")


# Allocation never creates or loses money -------------------------------------

amounts = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)


@st.composite
def open_items(draw: st.DrawFn) -> list[Item]:
    items = []
    for n in range(draw(st.integers(min_value=0, max_value=8))):
        amount = draw(amounts)
        paid = draw(st.decimals(min_value=D(0), max_value=amount, places=2))
        due = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 90)))
        items.append(Item(uuid4(), f"INV-{n}", due, due, amount, paid))
    return items


@settings(max_examples=300)
@given(amount=st.decimals(min_value=D(0), max_value=D("500000"), places=2), items=open_items())
def test_allocation_neither_creates_nor_loses_money(amount: Decimal, items: list[Item]) -> None:
    allocations, left = allocate(amount, items)
    assert sum((a.amount for a in allocations), D(0)) + left == amount
    assert left >= 0
    by_id = {i.document_id: i for i in items}
    for allocation in allocations:
        assert 0 < allocation.amount <= by_id[allocation.document_id].open_amount
    # Oldest first: nothing goes to an item while an older one is left open.
    paid = {a.document_id: a.amount for a in allocations}
    ordered = sorted(items, key=lambda i: (i.due_on, i.issued_on, i.number))
    seen_short = False
    for item in ordered:
        if item.open_amount <= 0:
            continue
        if seen_short:
            assert item.document_id not in paid
        if paid.get(item.document_id, D(0)) < item.open_amount:
            seen_short = True


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("invoice"), st.decimals(min_value=D("-200"), max_value=D("900"), places=2)
        ),
        st.tuples(st.just("payment"), amounts),
        st.tuples(st.just("withdraw"), st.integers(0, 20)),
        st.tuples(st.just("credit_note"), st.integers(0, 20)),
    ),
    max_size=25,
)


@settings(max_examples=200)
@given(ops=operations)
def test_the_balance_is_always_what_was_invoiced_less_what_was_paid_or_credited(
    ops: list[tuple[str, object]],
) -> None:
    r = ledger()
    invoiced = received = D(0)
    posted: list[UUID] = []
    for n, (kind, value) in enumerate(ops):
        if kind == "invoice":
            assert isinstance(value, Decimal)
            posted.append(post(r, n, str(value), date(2026, 1, 1) + timedelta(days=n)))
            invoiced += value
        elif kind == "payment":
            assert isinstance(value, Decimal)
            r.receive_payment(f"p{n}", value, date(2026, 6, 1), AT)
            received += value
        elif posted:
            assert isinstance(value, int)
            target = posted[value % len(posted)]
            item = r.items[target]
            if kind == "withdraw" and r.withdraw_invoice(target, "cancelled", AT):
                invoiced -= item.amount
            elif kind == "credit_note" and not item.withdrawn and item.amount > 1:
                r.post_credit_note(uuid4(), f"CN-{n}", target, D("1.00"), date(2026, 6, 1), AT)
                received += D("1.00")
    assert r.balance == invoiced - received
    assert r.credit >= 0
    for item in r.items.values():
        assert item.withdrawn or item.allocated <= max(item.amount, D(0))


# Collection attempts ---------------------------------------------------------


def autopay_ledger() -> tuple[Receivables, UUID]:
    r = ledger()
    r.set_autopay("tok_approved", AT)
    return r, post(r, 1, "100.00", date(2026, 1, 31))


def test_a_run_makes_one_collection_attempt_for_the_balance_and_approval_pays() -> None:
    r, jan = autopay_ledger()
    attempt = r.start_collection("run-1", CollectionType.ACCOUNT_BALANCE, date(2026, 2, 1), AT)
    assert attempt is not None and attempt.amount == D("100.00") and attempt.pending
    assert r.start_collection("run-1", CollectionType.ACCOUNT_BALANCE, date(2026, 2, 1), AT) is None
    r.answer_collection(
        attempt.attempt_id, GatewayOutcome.APPROVED, "ref", None, date(2026, 2, 1), AT
    )
    assert r.items[jan].status() is PaymentStatus.PAID
    assert r.payments[f"collection-{attempt.attempt_id}"].method == "collection"


def test_collection_by_due_date_takes_only_what_is_due() -> None:
    r, _ = autopay_ledger()  # due 2026-03-02
    post(r, 2, "50.00", date(2026, 3, 1))
    on = date(2026, 3, 5)
    attempt = r.start_collection("run-1", CollectionType.INVOICE_DUE_DATE, on, AT)
    assert attempt is not None and attempt.amount == D("100.00")


def test_a_declined_attempt_is_retried_on_a_schedule_then_given_up() -> None:
    r, _ = autopay_ledger()
    day = date(2026, 3, 1)
    expected_retry = [day + timedelta(days=1), None]
    for number, run in enumerate(("r1", "r2", "r3", "r4"), start=1):
        attempt = r.start_collection(run, CollectionType.ACCOUNT_BALANCE, day, AT)
        assert attempt is not None and attempt.number == number
        r.answer_collection(attempt.attempt_id, GatewayOutcome.DECLINED, None, "no", day, AT)
        retry_on = r.attempts[attempt.attempt_id].retry_on
        assert r.start_collection("early", CollectionType.ACCOUNT_BALANCE, day, AT) is None
        if retry_on is None:
            break
        day = retry_on
    assert number == 4 and retry_on is None
    assert expected_retry[0] == date(2026, 3, 2)
    assert not r.may_collect(date(2026, 12, 31))
    # A new invoice (or a payment) starts the schedule afresh.
    post(r, 2, "10.00", date(2026, 4, 30))
    attempt = r.start_collection("r5", CollectionType.ACCOUNT_BALANCE, date(2026, 5, 1), AT)
    assert attempt is not None and attempt.number == 1


def test_a_timed_out_attempt_stays_pending_and_blocks_another_until_reconciled() -> None:
    r, _ = autopay_ledger()
    day = date(2026, 3, 1)
    attempt = r.start_collection("r1", CollectionType.ACCOUNT_BALANCE, day, AT)
    assert attempt is not None
    r.answer_collection(attempt.attempt_id, GatewayOutcome.TIMEOUT, None, "no answer", day, AT)
    assert r.pending_attempt is not None
    assert r.start_collection("r2", CollectionType.ACCOUNT_BALANCE, day, AT) is None
    r.answer_collection(attempt.attempt_id, GatewayOutcome.APPROVED, "ref", None, day, AT)
    assert r.pending_attempt is None and r.balance == 0
    with pytest.raises(ReceivablesError, match="already answered"):
        r.answer_collection(attempt.attempt_id, GatewayOutcome.APPROVED, "ref", None, day, AT)


def test_no_attempt_without_autopay_or_with_nothing_to_collect() -> None:
    r = ledger()
    post(r, 1, "100.00", date(2026, 1, 31))
    assert r.start_collection("r1", CollectionType.ACCOUNT_BALANCE, date(2026, 3, 1), AT) is None
    r.set_autopay("tok_approved", AT)
    r.receive_payment("p", D("100.00"), date(2026, 2, 1), AT)
    assert r.start_collection("r1", CollectionType.ACCOUNT_BALANCE, date(2026, 3, 1), AT) is None


def test_allocations_are_value_objects_with_exact_amounts() -> None:
    assert Allocation(document_id=uuid4(), amount=D("0.10")).amount == D("0.10")


def test_an_account_suspended_by_hand_is_lifted_by_hand_not_by_a_payment() -> None:
    r = ledger()
    post(r, 1, "100.00", date(2026, 1, 31))
    assert r.suspend("fraud check", AT) is True
    assert r.suspend("again", AT) is False
    r.receive_payment("p1", D("100.00"), date(2026, 2, 1), AT)
    assert r.suspended
    assert r.reactivate("cleared", AT) is True
    assert not r.suspended
    assert r.reactivate("cleared", AT) is False
    with pytest.raises(ReceivablesError):
        r.suspend("  ", AT)
