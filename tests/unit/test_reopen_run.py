"""Reopening a cancelled run's billing on an account: everything it billed is
unbilled again, once; a later run's billing blocks it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from domain.billing.account import Account
from domain.billing.contracts import ContractTerms
from domain.billing.terms import BillingScope, ChargeTerms, PackageTerms
from domain.shared.errors import AccountError
from domain.shared.periods import Frequency, Period, Timing

AT = datetime(2026, 1, 1, tzinfo=UTC)
JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))


def billed_account() -> Account:
    account = Account.open("A", "A Ltd", "EUR", None, "default", AT)
    account.subscribe(
        PackageTerms(
            package_id="phone", description="Phone", amount=Decimal("20.00"),
            frequency=Frequency.MONTHLY, timing=Timing.ADVANCE, start_date=date(2026, 1, 1),
            usage_rate=Decimal("0.10"),
        ),
        None,
        AT,
    )  # fmt: skip
    account.record_usage("u1", "phone", Decimal("10"), date(2026, 1, 5), AT)
    account.add_charge(
        ChargeTerms(charge_id="c1", description="Setup", amount=Decimal("5.00"),
                    charge_date=date(2026, 1, 2)),
        AT,
    )  # fmt: skip
    account.agree_contract(
        ContractTerms(contract_id="k", start_date=date(2026, 1, 1), term_months=12,
                      early_termination_fee=Decimal("50.00"), description="Contract"),
        AT,
    )  # fmt: skip
    account.terminate_contract("k", date(2026, 1, 20), AT)
    return account


def lines(account: Account, run_id: str, period: Period) -> list[tuple[str, str]]:
    return [(ln.source, str(ln.amount)) for ln in account.bill(run_id, period, period.end, AT)]


def test_a_reopened_run_is_billed_again_exactly_once() -> None:
    account = billed_account()
    first = lines(account, "jan", JANUARY)
    assert first == [
        ("package:phone", "20.00"), ("usage:phone", "1.00"), ("charge:c1", "5.00"),
        ("contract:k", "50.00"),
    ]  # fmt: skip
    spend = account.contract_spend("k")
    assert account.reopen_run("jan", AT) is True
    assert account.contract_spend("k") == Decimal(0)
    assert lines(account, "jan-again", JANUARY) == first
    assert account.contract_spend("k") == spend
    assert lines(account, "jan-third", JANUARY) == []
    assert account.reopen_run("never", AT) is False


def test_reopening_survives_a_replay() -> None:
    account = billed_account()
    lines(account, "jan", JANUARY)
    account.reopen_run("jan", AT)
    rebuilt = Account.project(None, account.collect_events())
    assert rebuilt is not None
    assert lines(rebuilt, "jan-again", JANUARY) == lines(account, "jan-again", JANUARY)


def test_a_run_billed_over_by_a_later_run_cannot_be_reopened() -> None:
    account = billed_account()
    lines(account, "jan", JANUARY)
    lines(account, "feb", FEBRUARY)
    with pytest.raises(AccountError, match=r"billed after run jan .* cancel the later run first"):
        account.reopen_run("jan", AT)
    assert account.reopen_run("feb", AT) is True
    assert account.reopen_run("jan", AT) is True
    assert account.packages["phone"].next_bill_date == date(2026, 1, 1)


MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))


def test_reopening_a_run_that_passed_over_a_bill_date_or_caught_it_up_restores_what_is_owed() -> (
    None
):
    account = Account.open("A", "A Ltd", "EUR", None, "default", AT)
    account.subscribe(
        PackageTerms(package_id="desk", description="Desk", amount=Decimal("10.00"),
                     frequency=Frequency.MONTHLY, timing=Timing.ADVANCE,
                     start_date=date(2026, 1, 1)),
        None, AT,
    )  # fmt: skip
    account.bill("feb", FEBRUARY, FEBRUARY.end, AT)  # passes over Jan 1
    assert account.owed() == [("desk", date(2026, 1, 1))]
    account.reopen_run("feb", AT)
    assert account.owed() == [] and account.packages["desk"].next_bill_date == date(2026, 1, 1)

    account.bill("feb", FEBRUARY, FEBRUARY.end, AT)
    catch_up = BillingScope(catch_up=True)
    march = account.bill("mar", MARCH, MARCH.end, AT, catch_up)
    assert [ln.service_period_start for ln in march] == [date(2026, 1, 1), date(2026, 3, 1)]
    assert account.owed() == []
    account.reopen_run("mar", AT)
    assert account.owed() == [("desk", date(2026, 1, 1))]
    assert account.packages["desk"].next_bill_date == date(2026, 3, 1)


def test_a_run_that_left_a_bill_date_owed_cannot_reopen_once_a_later_run_billed_it() -> None:
    account = Account.open("A", "A Ltd", "EUR", None, "default", AT)
    account.subscribe(
        PackageTerms(package_id="desk", description="Desk", amount=Decimal("10.00"),
                     frequency=Frequency.MONTHLY, timing=Timing.ADVANCE,
                     start_date=date(2026, 1, 1)),
        None, AT,
    )  # fmt: skip
    account.bill("feb", FEBRUARY, FEBRUARY.end, AT)  # leaves Jan 1 owed
    account.bill("jan", JANUARY, JANUARY.end, AT)  # a run over January bills it
    account.collect_events()

    with pytest.raises(AccountError, match="2026-01-01, which run feb left owed, was billed"):
        account.reopen_run("feb", AT)
    assert account.collect_events() == []


def test_catch_up_does_not_bill_an_owed_bill_date_after_the_window() -> None:
    account = Account.open("A", "A Ltd", "EUR", None, "default", AT)
    account.subscribe(
        PackageTerms(package_id="desk", description="Desk", amount=Decimal("10.00"),
                     frequency=Frequency.MONTHLY, timing=Timing.ADVANCE,
                     start_date=date(2025, 12, 1)),
        None, AT,
    )  # fmt: skip
    account.bill("feb", FEBRUARY, FEBRUARY.end, AT)  # leaves Dec 1 and Jan 1 owed
    december = Period(date(2025, 12, 1), date(2025, 12, 31))

    caught = account.bill("dec", december, december.end, AT, BillingScope(catch_up=True))

    assert [ln.service_period_start for ln in caught] == [date(2025, 12, 1)]
    assert account.owed() == [("desk", date(2026, 1, 1))]
