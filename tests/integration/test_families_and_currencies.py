"""Invoicer families and exchange rates, against a real event store.

An account billed onto its invoicer's invoice: one invoice for the family, each
line naming the account it is for, converted to the invoicer's currency with
the rate the run fixed when it started; every line also in the base currency.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from application.billing.exchange_rates import set_base_currency, set_rate
from application.billing.invoicers import InvalidInvoicer, assign_invoicer
from application.runs.executor import BillRunExecutor, RunCheckFailed, RunNeedsRates
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import InvalidInput, InvoiceNotFound
from domain.runs.settings import RunStatus, Selection
from domain.shared.errors import DomainError
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from tests.conftest import account, import_accounts, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))


@pytest.fixture
def family(billing: Billing) -> Billing:
    import_accounts(
        billing,
        account("HQ", package("office", "100.00")),
        account("BRANCH", package("desk", "50.00"), currency="USD"),
        account("SHOP", package("kiosk", "30.00")),
        account("SOLO", package("locker", "10.00"), currency="GBP"),
    )
    assign_invoicer(billing, "BRANCH", "HQ")
    assign_invoicer(billing, "SHOP", "HQ")
    set_rate(billing, "EUR", "USD", Decimal("1.25"), date(2025, 12, 1))
    set_rate(billing, "GBP", "EUR", Decimal("1.15"), date(2025, 12, 1))
    set_base_currency(billing, "EUR")
    return billing


def lines_of(billing: Billing, run_id: str, account_id: str) -> list[tuple[str, ...]]:
    invoice = billing.get_invoice(invoice_uuid(run_id, account_id))
    return [
        (
            line.account_id,
            str(line.amount),
            line.currency,
            str(line.original_amount),
            str(line.original_currency),
            str(line.base_amount),
        )
        for line in invoice.lines
    ]


def test_a_family_gets_one_invoice_in_the_invoicers_currency(family: Billing) -> None:
    schedule_run(family, "jan", JANUARY, None, Selection())
    BillRunExecutor(family, batch_size=1).execute("jan")  # members in batches of their own

    assert lines_of(family, "jan", "HQ") == [
        ("HQ", "100.00", "EUR", "None", "None", "100.00"),
        ("BRANCH", "40.00", "EUR", "50.00", "USD", "40.00"),  # 50 / 1.25
        ("SHOP", "30.00", "EUR", "None", "None", "30.00"),
    ]
    hq = family.get_invoice(invoice_uuid("jan", "HQ"))
    assert hq.total == Decimal("170.00") == sum(line.amount for line in hq.lines)
    assert lines_of(family, "jan", "SOLO") == [
        ("SOLO", "10.00", "GBP", "None", "None", "11.50")  # reported in EUR at 1.15
    ]
    for member in ("BRANCH", "SHOP"):
        with pytest.raises(InvoiceNotFound):
            family.get_invoice(invoice_uuid("jan", member))
    run = family.get_run("jan")
    assert run.statistics.invoices == 2
    assert run.rates.rates == {"EUR/USD": Decimal("1.25"), "GBP/EUR": Decimal("1.15")}
    assert run.rates.base_currency == "EUR"


def test_a_run_converts_with_the_rates_it_started_with(family: Billing) -> None:
    schedule_run(family, "jan", JANUARY, None, Selection(accounts=("HQ",)))
    executor = BillRunExecutor(family, batch_size=1)
    run = family.get_run("jan")
    executor._start(run)
    set_rate(family, "EUR", "USD", Decimal("2.00"), date(2025, 12, 1))  # after the start
    executor.execute("jan")
    assert ("BRANCH", "40.00", "EUR", "50.00", "USD", "40.00") in lines_of(family, "jan", "HQ")
    # The next run takes the new rate.
    schedule_run(family, "feb", FEBRUARY, None, Selection(accounts=("HQ",)))
    executor.execute("feb")
    assert ("BRANCH", "25.00", "EUR", "50.00", "USD", "25.00") in lines_of(family, "feb", "HQ")


def test_a_run_missing_a_rate_refuses_to_start_naming_the_pair(billing: Billing) -> None:
    import_accounts(
        billing,
        account("HQ", package("office", "100.00")),
        account("BRANCH", package("desk", "50.00"), currency="CHF"),
    )
    assign_invoicer(billing, "BRANCH", "HQ")
    schedule_run(billing, "jan", JANUARY, None, Selection())
    version = billing.get_run("jan").version
    with pytest.raises(RunCheckFailed, match="CHF/EUR") as refused:
        BillRunExecutor(billing, batch_size=10).execute("jan")
    assert [f.check for f in refused.value.report.errors] == ["missing_rate"]
    with pytest.raises(RunNeedsRates, match="CHF/EUR") as previewing:
        BillRunExecutor(billing, batch_size=10).preview("jan")
    assert previewing.value.pairs == ["CHF/EUR"]
    run = billing.get_run("jan")
    assert run.status is RunStatus.SCHEDULED and run.version == version  # nothing written

    set_rate(billing, "EUR", "CHF", Decimal("0.94"), date(2026, 1, 31))  # inverse is enough
    BillRunExecutor(billing, batch_size=10).execute("jan")
    assert lines_of(billing, "jan", "HQ")[1][:3] == ("BRANCH", "53.19", "EUR")  # 50 / 0.94


def test_the_base_currency_needs_a_rate_from_every_account_currency(family: Billing) -> None:
    import_accounts(family, account("YEN", package("box", "1000"), currency="JPY"))
    schedule_run(family, "jan", JANUARY, None, Selection())
    with pytest.raises(RunCheckFailed, match="JPY/EUR"):
        BillRunExecutor(family, batch_size=10).execute("jan")


def test_families_are_one_level_and_selected_by_their_invoicer(family: Billing) -> None:
    with pytest.raises(InvalidInvoicer, match="itself billed onto HQ"):
        assign_invoicer(family, "SOLO", "BRANCH")
    with pytest.raises(DomainError, match="invoicer of BRANCH, SHOP"):
        assign_invoicer(family, "HQ", "SOLO")
    with pytest.raises(InvalidInput, match="select HQ"):
        schedule_run(family, "jan", JANUARY, None, Selection(accounts=("BRANCH",)))


def test_a_member_leaving_its_family_is_billed_on_its_own_again(family: Billing) -> None:
    schedule_run(family, "jan", JANUARY, None, Selection())
    BillRunExecutor(family, batch_size=10).execute("jan")
    assert assign_invoicer(family, "SHOP", None) == 2  # the member's event and HQ's
    assert assign_invoicer(family, "SHOP", None) == 0
    assert family.get_account("HQ").members == ["BRANCH"]
    schedule_run(family, "feb", FEBRUARY, None, Selection())
    BillRunExecutor(family, batch_size=10).execute("feb")
    assert [line[0] for line in lines_of(family, "feb", "HQ")] == ["HQ", "BRANCH"]
    assert lines_of(family, "feb", "SHOP") == [("SHOP", "30.00", "EUR", "None", "None", "30.00")]


def test_executing_the_family_run_again_bills_nothing_twice(family: Billing) -> None:
    schedule_run(family, "jan", JANUARY, None, Selection())
    BillRunExecutor(family, batch_size=2).execute("jan")
    again = BillRunExecutor(family, batch_size=2).execute("jan")
    assert again.already_completed
    assert family.get_account("BRANCH").packages["desk"].next_bill_date == date(2026, 2, 1)
