"""Cancelling a run: its invoices cancelled, and with reopen exactly what it billed
billed again, once, by a later run; refusals change nothing."""

from __future__ import annotations

from datetime import date

import pytest

from application.runs.cancel import RunCancelRefused, cancel_run
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.events import ChargeBilled, ContractPenaltyApplied, PackageBilled, UsageBilled
from domain.invoicing.review import ReviewStatus
from domain.runs.settings import CancelMode, RunStatus, Selection
from domain.shared.errors import RunNotRunnable
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from tests.integration.helpers import (
    EventLog,
    assert_billed_at_most_once,
    import_with_usage_and_charges,
    varied_accounts,
)

Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
ACCOUNTS = varied_accounts(12)


def execute(billing: Billing, run_id: str) -> None:
    schedule_run(billing, run_id, Q1, None, Selection())
    BillRunExecutor(billing, batch_size=5).execute(run_id)


def billed_keys(log: EventLog) -> dict[str, list[tuple[str, ...]]]:
    """What each run billed, as (account, what) keys, without run ids."""
    keys: dict[str, list[tuple[str, ...]]] = {}
    for s in log.states(PackageBilled):
        keys.setdefault(s["run_id"], []).append(("package", s["line"]["account_id"],
                                                  s["package_id"], s["bill_date"]))  # fmt: skip
    for s in log.states(UsageBilled):
        for usage_id in s["usage_ids"]:
            keys.setdefault(s["run_id"], []).append(("usage", str(s["originator_id"]), usage_id))
    for s in log.states(ChargeBilled):
        keys.setdefault(s["run_id"], []).append(("charge", str(s["originator_id"]),
                                                  s["charge_id"]))  # fmt: skip
    for s in log.states(ContractPenaltyApplied):
        keys.setdefault(s["run_id"], []).append(("penalty", str(s["originator_id"]),
                                                  s["contract_id"], s["reason"]))  # fmt: skip
    return {run_id: sorted(k) for run_id, k in keys.items()}


def test_cancel_with_reopen_then_a_new_run_bills_exactly_the_reopened_items_once(
    billing: Billing, database_url: str
) -> None:
    import_with_usage_and_charges(billing, *ACCOUNTS)
    execute(billing, "q1")
    outcome = cancel_run(billing, "q1", CancelMode.REOPEN, "wrong prices")
    assert outcome.invoices_cancelled == 12 and outcome.accounts_reopened == 12
    run = billing.get_run("q1")
    assert run.status is RunStatus.CANCELLED
    invoice = billing.get_invoice(invoice_uuid("q1", ACCOUNTS[0]["id"]))
    assert invoice.review_status is ReviewStatus.CANCELLED

    execute(billing, "q1-again")
    with EventLog(database_url) as log:
        keys = billed_keys(log)
    assert keys["q1-again"] == keys["q1"]  # exactly the reopened items
    assert billing.get_run("q1-again").statistics.lines == run.statistics.lines
    execute(billing, "q1-third")
    assert billing.get_run("q1-third").statistics.lines == 0  # once, not twice
    with pytest.raises(RunNotRunnable, match="cancelled"):
        BillRunExecutor(billing, batch_size=5).execute("q1")


def test_cancel_with_discard_writes_off_what_the_run_billed(billing: Billing) -> None:
    import_with_usage_and_charges(billing, *ACCOUNTS)
    execute(billing, "q1")
    outcome = cancel_run(billing, "q1", CancelMode.DISCARD, "customer left")
    assert (outcome.invoices_cancelled, outcome.accounts_reopened) == (12, 0)
    execute(billing, "q1-again")
    assert billing.get_run("q1-again").statistics.lines == 0


def test_a_run_with_an_approved_invoice_refuses_and_changes_nothing(
    billing: Billing, database_url: str
) -> None:
    import_with_usage_and_charges(billing, *ACCOUNTS)
    execute(billing, "q1")
    invoice = billing.get_invoice(invoice_uuid("q1", ACCOUNTS[3]["id"]))
    invoice.approve(billing.clock())
    billing.save(invoice)
    with EventLog(database_url) as log:
        before = log.total()
        with pytest.raises(RunCancelRefused, match=r"approved or delivered invoices .*INV-"):
            cancel_run(billing, "q1", CancelMode.REOPEN, "oops")
        assert log.total() == before
        assert_billed_at_most_once(log)


def test_a_run_billed_over_by_a_later_run_cannot_be_reopened(billing: Billing) -> None:
    import_with_usage_and_charges(billing, *ACCOUNTS)
    execute(billing, "q1")
    schedule_run(billing, "q2", Period(date(2026, 4, 1), date(2026, 6, 30)), None, Selection())
    BillRunExecutor(billing, batch_size=5).execute("q2")
    with pytest.raises(RunCancelRefused, match="cancel the later run first"):
        cancel_run(billing, "q1", CancelMode.REOPEN, "oops")
    cancel_run(billing, "q2", CancelMode.REOPEN, "q2 first")
    cancel_run(billing, "q1", CancelMode.REOPEN, "then q1")
    execute(billing, "q1-again")
    assert billing.get_run("q1-again").statistics.lines == billing.get_run("q1").statistics.lines
