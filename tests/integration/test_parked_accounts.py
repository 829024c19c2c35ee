"""Failures do not stop a run: an account that cannot be billed is parked with its
reason, the others are billed, and `retry` bills it once the problem is fixed."""

from __future__ import annotations

from datetime import date

import pytest

from application.billing.invoicers import assign_invoicer
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.exchange_rates import MissingRate
from domain.runs.settings import Selection
from domain.shared.errors import RunNotRunnable
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import EventLog, assert_billed_at_most_once

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


@pytest.fixture
def parked(billing: Billing) -> Billing:
    """Run `jan` with HQ parked: once the run had started (its rates fixed, none for
    CHF), BRANCH, in CHF, was made a member of HQ, in EUR: HQ's family cannot be
    converted, so it is parked; A and B are billed."""
    import_accounts(
        billing,
        account("A", package("office", "100.00")),
        account("HQ", package("office", "200.00")),
        account("BRANCH", package("desk", "50.00"), currency="CHF"),
        account("B", package("office", "300.00")),
    )
    schedule_run(billing, "jan", JANUARY, None, Selection())
    executor = BillRunExecutor(billing, batch_size=1)
    executor._start(billing.get_run("jan"))
    assign_invoicer(billing, "BRANCH", "HQ")
    executor.execute("jan")
    return billing


def test_a_failing_account_is_parked_and_the_run_bills_the_others(
    parked: Billing, database_url: str
) -> None:
    run = parked.get_run("jan")
    assert run.is_completed
    assert list(run.parked) == ["HQ"]
    assert "MissingRate" in run.parked["HQ"] and "CHF/EUR" in run.parked["HQ"]
    assert run.statistics.invoices == 2  # A and B
    for account_id in ("A", "B"):
        assert parked.get_invoice(invoice_uuid("jan", account_id)).total > 0
    # Nothing of HQ's family was written: its packages are still due.
    assert parked.get_account("HQ").packages["office"].next_bill_date == date(2026, 1, 1)
    assert parked.get_account("BRANCH").packages["desk"].next_bill_date == date(2026, 1, 1)
    with EventLog(database_url) as log:
        assert_billed_at_most_once(log)


def test_a_retry_that_fails_again_writes_nothing(parked: Billing, database_url: str) -> None:
    with EventLog(database_url) as log:
        before = log.total()
        with pytest.raises(MissingRate):
            BillRunExecutor(parked, batch_size=1).retry("jan", "HQ")
        assert log.total() == before
    assert list(parked.get_run("jan").parked) == ["HQ"]


def test_a_retry_after_the_fix_bills_the_parked_account_once(parked: Billing) -> None:
    assign_invoicer(parked, "BRANCH", None)  # the fix: HQ bills alone again
    statistics = BillRunExecutor(parked, batch_size=1).retry("jan", "HQ")
    assert (statistics.lines, statistics.invoices) == (1, 1)
    run = parked.get_run("jan")
    assert run.parked == {} and run.statistics.invoices == 3
    assert parked.get_invoice(invoice_uuid("jan", "HQ")).number == 3
    with pytest.raises(RunNotRunnable, match="not parked"):
        BillRunExecutor(parked, batch_size=1).retry("jan", "HQ")
