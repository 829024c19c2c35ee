"""A family is parked only when its data cannot be billed; a bug in billrun fails the
batch loudly instead of being reported as a parked account.

There is no real bug to trigger, so the executor below raises one at the family
step for HQ only: the same place a real AttributeError or TypeError would come from.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import InvalidOperation

import pytest

from application.invoicing.invoices import FamilyOutcome
from application.runs.executor import BillRunExecutor, _Batch
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.account import Account
from domain.runs.bill_run import BillRun
from domain.runs.settings import Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from tests.conftest import account, import_accounts, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


class _FailingForHQ(BillRunExecutor):
    def __init__(self, billing: Billing, error: Exception) -> None:
        super().__init__(billing, batch_size=10)
        self.error = error

    def _invoice_family(
        self, run: BillRun, batch: _Batch, invoicer: Account, at: datetime
    ) -> FamilyOutcome:
        if invoicer.account_id == "HQ":
            raise self.error
        return super()._invoice_family(run, batch, invoicer, at)


def _schedule(billing: Billing) -> None:
    import_accounts(
        billing,
        account("A", package("office", "100.00")),
        account("HQ", package("office", "200.00")),
    )
    schedule_run(billing, "jan", JANUARY, None, Selection())


@pytest.mark.parametrize(
    "bug",
    [
        AttributeError("'NoneType' object has no attribute 'amount'"),
        TypeError("bad operand"),
        KeyError("office"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_bug_at_the_family_step_fails_the_batch_instead_of_parking(
    billing: Billing, bug: Exception
) -> None:
    _schedule(billing)
    with pytest.raises(type(bug)):
        _FailingForHQ(billing, bug).execute("jan")
    run = billing.get_run("jan")
    assert not run.is_completed and run.parked == {}
    # Nothing of the batch was saved: A, in the same batch, is not billed either.
    assert billing.get_account("A").packages["office"].next_bill_date == date(2026, 1, 1)
    # Once the bug is gone, the run resumes and bills both.
    BillRunExecutor(billing, batch_size=10).execute("jan")
    for account_id in ("A", "HQ"):
        assert billing.get_invoice(invoice_uuid("jan", account_id)).total > 0


@pytest.mark.parametrize(
    "data_error",
    [
        ValueError("cannot round 1E+40 to EUR"),
        InvalidOperation("quantize"),
        OverflowError("date value out of range"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_data_error_at_the_family_step_parks_only_that_family(
    billing: Billing, data_error: Exception
) -> None:
    _schedule(billing)
    _FailingForHQ(billing, data_error).execute("jan")
    run = billing.get_run("jan")
    assert run.is_completed
    assert list(run.parked) == ["HQ"] and type(data_error).__name__ in run.parked["HQ"]
    assert billing.get_invoice(invoice_uuid("jan", "A")).total > 0
