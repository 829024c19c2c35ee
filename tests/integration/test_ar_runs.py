"""AR terms in bill runs, against real PostgreSQL: invoices posted with due dates,
the dunning step (once per invoice and stage, however often or concurrently it
runs), late fees billed once, suspension, and the failed workflow state."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from application.billing.exchange_rates import set_base_currency, set_rate
from application.invoicing.review import review
from application.runs.executor import BillRunExecutor
from application.runs.scheduler import Manager, resume_failed_run
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewAction
from domain.receivables.allocation import PaymentStatus
from domain.receivables.dunning import DunningRules, DunningStage, SuspendedBilling
from domain.receivables.events import DunningApplied
from domain.runs.settings import RunSettings, RunStatus, Selection, WorkflowState
from domain.shared.periods import Period
from entrypoints.presenters import run_steps
from infrastructure.topics import topic_of
from tests.conftest import SteppingClock, account, import_accounts, package
from tests.integration.helpers import billing_on

D = Decimal
RULES = DunningRules.checked(
    "standard",
    [
        DunningStage(days_overdue=7, notify=True),
        DunningStage(days_overdue=30, notify=True, late_fee=D("10.00")),
        DunningStage(days_overdue=60, suspend=True),
    ],
)
DUNNING_ONLY = RunSettings(
    run_dunning=True,
    bill_packages=False,
    bill_usage=False,
    bill_charges=False,
    run_contracts=False,
    run_invoices=False,
)
JAN = Period(date(2026, 1, 1), date(2026, 1, 31))
DUE = date(2026, 1, 31) + timedelta(days=14)


def configure_group(billing: Billing, **kwargs: Any) -> None:
    group = billing.get_bill_group("monthly")
    group.configure(
        "none", None, None, None, billing.clock(), payment_terms_days=14, dunning=RULES, **kwargs
    )
    billing.save(group)


def bill(
    billing: Billing, run_id: str, period: Period, settings: RunSettings | None = None
) -> None:
    schedule_run(billing, run_id, period, None, Selection(), settings)
    BillRunExecutor(billing, batch_size=2).execute(run_id)


def dun(billing: Billing, on: date) -> str:
    run_id = f"dunning-{on}"
    bill(billing, run_id, Period(on, on), DUNNING_ONLY)
    return run_id


def stages(billing: Billing, account_id: str) -> list[tuple[str, int]]:
    receivables = billing.get_receivables(account_id)
    return [
        (e.number, e.stage)
        for e in billing.iter_history(receivables.id)
        if isinstance(e, DunningApplied)
    ]


def setup_january(billing: Billing, count: int = 3, **group: Any) -> None:
    configure_group(billing, **group)
    import_accounts(billing, *(account(f"A{n}", package()) for n in range(1, count + 1)))
    bill(billing, "jan", JAN)


def test_a_closed_invoice_is_posted_to_receivables_with_its_due_date(billing: Billing) -> None:
    setup_january(billing, count=1)
    receivables = billing.get_receivables("A1")
    [item] = receivables.items.values()
    invoice = billing.get_invoice(item.document_id)
    assert invoice.due_date == DUE == item.due_on
    assert item.amount == invoice.total == D("100.00")
    assert receivables.balance == D("100.00")
    assert item.status(DUE + timedelta(days=1)) is PaymentStatus.OVERDUE


def test_an_account_s_own_payment_terms_come_before_its_group_s(billing: Billing) -> None:
    configure_group(billing)
    import_accounts(billing, account("A1", package()))
    receivables = billing.get_receivables("A1")
    receivables.set_payment_terms(7, billing.clock())
    billing.save(receivables)
    bill(billing, "jan", JAN)
    [item] = billing.get_receivables("A1").items.values()
    assert item.due_on == date(2026, 2, 7)


def test_daily_dunning_runs_apply_each_stage_once_and_bill_the_late_fee_once(
    billing: Billing,
) -> None:
    setup_january(billing)
    receivables = billing.get_receivables("A1")
    receivables.receive_payment("early", D("100.00"), DUE, billing.clock())
    billing.save(receivables)
    day = DUE
    while day <= DUE + timedelta(days=45):
        dun(billing, day)
        if day == DUE + timedelta(days=40):
            receivables = billing.get_receivables("A2")
            receivables.receive_payment("late", D("100.00"), day, billing.clock())
            billing.save(receivables)
        day += timedelta(days=1)
    assert stages(billing, "A1") == []
    assert stages(billing, "A2") == [("INV-00000002", 1), ("INV-00000002", 2)]
    assert stages(billing, "A3") == [("INV-00000003", 1), ("INV-00000003", 2)]
    # The same day again, as a second run or the same run re-executed: nothing new.
    BillRunExecutor(billing, batch_size=2).execute(f"dunning-{DUE + timedelta(days=30)}")
    bill(billing, "again", Period(DUE + timedelta(days=45), DUE + timedelta(days=45)), DUNNING_ONLY)
    assert len(stages(billing, "A3")) == 2
    # The late fee is a charge, billed by the next run that bills charges, once.
    assert "late-fee:INV-00000003:stage-2" in billing.get_account("A3").charges
    bill(billing, "apr", Period(date(2026, 4, 1), date(2026, 4, 30)))
    bill(billing, "may", Period(date(2026, 5, 1), date(2026, 5, 31)))
    fees = [
        line
        for invoice in _invoices_of(billing, "A3")
        for line in invoice.lines
        if line.source.startswith("charge:late-fee")
    ]
    assert [(f.amount, f.tax) for f in fees] == [(D("10.00"), D("0.00"))]
    run = billing.get_run(f"dunning-{DUE + timedelta(days=30)}")
    step = next(s for s in run_steps(run) if s["step"] == "run_dunning")
    assert step["ran"] and step["stages_applied"] == 2


def _invoices_of(billing: Billing, account_id: str) -> list[Invoice]:
    receivables = billing.get_receivables(account_id)
    return [billing.get_invoice(i) for i in receivables.items]


def test_two_executors_racing_on_a_dunning_run_apply_each_stage_once(database_url: str) -> None:
    run_id = "dunning-race"
    on = DUE + timedelta(days=61)
    with billing_on(database_url, clock=SteppingClock()) as b:
        setup_january(b, count=6)
        schedule_run(b, run_id, Period(on, on), None, Selection(), DUNNING_ONLY)
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            with billing_on(database_url, clock=SteppingClock()) as mine:
                BillRunExecutor(mine, batch_size=1).execute(run_id)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=execute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with billing_on(database_url) as b:
        for n in range(1, 7):
            assert stages(b, f"A{n}") == [(f"INV-{n:08d}", 3)]
            assert b.get_receivables(f"A{n}").suspended
        assert b.get_run(run_id).statistics.dunning_applied == 6


def test_a_suspended_account_s_invoices_are_held_until_it_is_paid_in_a_holding_group(
    billing: Billing,
) -> None:
    setup_january(billing, count=1, suspended_billing=SuspendedBilling.HOLD_INVOICES)
    dun(billing, DUE + timedelta(days=60))
    assert billing.get_receivables("A1").suspended
    bill(billing, "apr", Period(date(2026, 4, 1), date(2026, 4, 30)))
    april = [i for i in _invoices_of(billing, "A1") if i.run_id == "apr"]
    assert [i.released for i in april] == [False]
    receivables = billing.get_receivables("A1")
    receivables.receive_payment("p", receivables.balance, date(2026, 5, 2), billing.clock())
    billing.save(receivables)
    assert not billing.get_receivables("A1").suspended
    bill(billing, "may", Period(date(2026, 5, 1), date(2026, 5, 31)))
    assert billing.get_invoice(april[0].id).released


def test_a_cancelled_invoice_leaves_the_receivables_and_its_payment_becomes_credit(
    billing: Billing,
) -> None:
    setup_january(billing, count=1)
    receivables = billing.get_receivables("A1")
    receivables.receive_payment("p", D("40.00"), date(2026, 2, 1), billing.clock())
    billing.save(receivables)
    [invoice_id] = receivables.items
    outcome = review(billing, ReviewAction.CANCEL, [invoice_id], reason="wrong price")
    assert [r.kind.value for r in outcome.results] == ["changed"]
    receivables = billing.get_receivables("A1")
    assert receivables.items[invoice_id].status() is PaymentStatus.WITHDRAWN
    assert (receivables.credit, receivables.balance) == (D("40.00"), D("-40.00"))


def test_a_manager_fails_a_refused_run_leaves_it_alone_and_takes_it_again_when_resumed(
    billing: Billing,
) -> None:
    import_accounts(billing, account("US-1", package(), currency="USD"))
    set_base_currency(billing, "EUR")
    schedule_run(billing, "jan", JAN, None, Selection())
    manager = Manager(billing, "m1", batch_size=2)
    managed = manager.tick()
    assert managed is not None and managed.outcome == "failed"
    run = billing.get_run("jan")
    assert run.status is RunStatus.FAILED and "no exchange rate" in (run.failure or "")
    assert run.workflow_state is WorkflowState.FAILED
    assert manager.tick() is None  # left alone
    set_rate(billing, "EUR", "USD", D("1.08"), date(2026, 1, 1))
    resume_failed_run(billing, "jan")
    managed = manager.tick()
    assert managed is not None and managed.outcome == "completed"
    assert billing.get_run("jan").statistics.invoices == 1
    history = [type(e).__name__ for e in billing.iter_history(run.id)]
    assert history.count("RunFailed") == 1 and history.count("RunResumed") == 1


def test_dunning_applied_is_in_the_log_under_the_receivables_topic(billing: Billing) -> None:
    setup_january(billing, count=1)
    dun(billing, DUE + timedelta(days=8))
    topic = topic_of(DunningApplied)
    assert billing.queries.count(topic, billing.queries.head(), None) == 1
