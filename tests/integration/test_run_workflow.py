"""A run's workflow: scheduled -> drafts ready -> validated -> completed, each step by
`process_run`, with its refusals."""

from __future__ import annotations

from datetime import date

import pytest

from application.runs.cancel import RunCancelRefused, cancel_run
from application.runs.scheduling import schedule_run
from application.runs.workflow import RunNotProcessable, process_run
from application.shared.app import Billing
from domain.invoicing.review import ReviewStatus
from domain.runs.settings import CancelMode, Selection, WorkflowState
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from tests.conftest import account, import_accounts, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


def test_a_run_moves_through_its_workflow(billing: Billing) -> None:
    import_accounts(billing, account("A", package()), account("B", package()))
    schedule_run(billing, "jan", JANUARY, None, Selection())
    assert billing.get_run("jan").workflow_state is WorkflowState.SCHEDULED

    assert process_run(billing, "jan", 10) is WorkflowState.DRAFTS_READY
    b = billing.get_invoice(invoice_uuid("jan", "B"))
    assert b.review_status is ReviewStatus.DRAFT
    b.quarantine("check the price", billing.clock())
    billing.save(b)
    with pytest.raises(RunNotProcessable, match="quarantined invoices"):
        process_run(billing, "jan", 10)

    b = billing.get_invoice(invoice_uuid("jan", "B"))
    b.release_from_quarantine(billing.clock())
    billing.save(b)
    assert process_run(billing, "jan", 10) is WorkflowState.VALIDATED
    for account_id in ("A", "B"):
        invoice = billing.get_invoice(invoice_uuid("jan", account_id))
        assert invoice.review_status is ReviewStatus.APPROVED

    assert process_run(billing, "jan", 10) is WorkflowState.COMPLETED
    with pytest.raises(RunNotProcessable, match="no next state"):
        process_run(billing, "jan", 10)
    with pytest.raises(RunCancelRefused, match="approved or delivered invoices"):
        cancel_run(billing, "jan", CancelMode.REOPEN, "too late")
