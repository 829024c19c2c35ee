"""Dunning over a timeline: the clock is an argument, so each scenario lists the
days dunning runs on (and the payments in between) and what it applied."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from domain.receivables.dunning import DunningAction, DunningRules, DunningStage
from domain.receivables.receivables import Receivables
from domain.shared.errors import DomainError

AT = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal
ISSUED = date(2026, 1, 31)
DUE = ISSUED + timedelta(days=30)  # 2026-03-02

RULES = DunningRules.checked(
    "standard",
    [
        DunningStage(days_overdue=7, notify=True),
        DunningStage(days_overdue=30, notify=True, late_fee=D("10.00"), late_fee_percent=D(5)),
        DunningStage(days_overdue=60, notify=True, suspend=True),
    ],
)


def overdue_ledger(amount: str = "200.00") -> tuple[Receivables, object]:
    r = Receivables.open("ACME", "EUR", AT)
    invoice_id = uuid4()
    r.post_invoice(invoice_id, "INV-00000001", ISSUED, DUE, D(amount), AT)
    return r, invoice_id


def days(n: int) -> date:
    return DUE + timedelta(days=n)


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        # Run daily: each stage once, on the day it is reached.
        (
            [days(n) for n in range(0, 70)],
            [(days(7), 1), (days(30), 2), (days(60), 3)],
        ),
        # Run weekly from day 3: a stage is applied on the first run past it.
        (
            [days(n) for n in range(3, 75, 7)],
            [(days(10), 1), (days(31), 2), (days(66), 3)],
        ),
        # First seen 65 days overdue: only the highest stage reached, once.
        ([days(65), days(66), days(90)], [(days(65), 3)]),
        # Before the first stage, nothing.
        ([days(0), days(6)], []),
        # The same day many times: once.
        ([days(30)] * 5, [(days(30), 2)]),
    ],
)
def test_each_stage_is_applied_once_per_invoice_however_often_dunning_runs(
    timeline: list[date], expected: list[tuple[date, int]]
) -> None:
    r, _ = overdue_ledger()
    applied = []
    for on in timeline:
        for event in r.run_dunning(f"dunning-{on}", RULES, on, AT):
            applied.append((on, event.stage))
    assert applied == expected


def test_a_stage_records_its_actions_days_overdue_amount_and_fee() -> None:
    r, invoice_id = overdue_ledger("200.00")
    [event] = r.run_dunning("d", RULES, days(31), AT)
    assert event.invoice_id == invoice_id
    assert event.actions == (DunningAction.NOTIFY, DunningAction.LATE_FEE)
    assert (event.days_overdue, event.overdue_amount) == (31, D("200.00"))
    assert event.fee == D("20.00")  # 10.00 fixed + 5 % of 200.00
    assert event.rule == "standard"


def test_the_late_fee_percentage_is_of_the_amount_still_overdue_rounded_once() -> None:
    r, _ = overdue_ledger("200.00")
    r.receive_payment("p", D("66.67"), days(1), AT)
    [event] = r.run_dunning("d", RULES, days(30), AT)
    assert event.overdue_amount == D("133.33")
    assert event.fee == D("16.67")  # 10.00 + 6.6665 -> 16.67 (HALF_UP)


def test_a_paid_invoice_is_not_dunned() -> None:
    r, _ = overdue_ledger()
    r.receive_payment("p", D("200.00"), days(5), AT)
    assert r.run_dunning("d", RULES, days(40), AT) == []


def test_suspension_lasts_until_the_invoices_that_caused_it_are_paid() -> None:
    r, _ = overdue_ledger("200.00")
    r.run_dunning("d1", RULES, days(61), AT)
    assert r.suspended
    r.receive_payment("p1", D("150.00"), days(62), AT)
    assert r.suspended  # partly paid: still suspended
    r.receive_payment("p2", D("50.00"), days(63), AT)
    assert not r.suspended
    names = [type(e).__name__ for e in r.collect_events()]
    assert names[-1] == "AccountReinstated"
    assert names.count("AccountSuspended") == 1


def test_a_later_invoice_has_its_own_ladder() -> None:
    r, _ = overdue_ledger()
    later = uuid4()
    r.post_invoice(later, "INV-00000002", ISSUED + timedelta(days=28), days(28), D("50.00"), AT)
    stages = [(e.number, e.stage) for e in r.run_dunning("d", RULES, days(40), AT)]
    assert stages == [("INV-00000001", 2), ("INV-00000002", 1)]


def test_rules_without_stages_apply_nothing() -> None:
    r, _ = overdue_ledger()
    assert r.run_dunning("d", DunningRules(), days(400), AT) == []


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        ([DunningStage(days_overdue=0, notify=True)], "1 day overdue or later"),
        (
            [DunningStage(days_overdue=30, notify=True), DunningStage(days_overdue=7, notify=True)],
            "increasing",
        ),
        ([DunningStage(days_overdue=7)], "has no action"),
    ],
)
def test_a_bad_ladder_is_refused_with_what_is_wrong(
    stages: list[DunningStage], problem: str
) -> None:
    with pytest.raises(DomainError, match=problem):
        DunningRules.checked("bad", stages)


def test_a_late_fee_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        DunningStage(days_overdue=7, late_fee=D("-1"))
